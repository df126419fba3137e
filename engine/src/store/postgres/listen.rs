//! Waking workers in every process when runs are queued, with PostgreSQL LISTEN/NOTIFY.
//!
//! Every transaction that puts a run in the queue (accepting events, retrying, re-queueing after
//! expired or released leases) issues `NOTIFY hookflow_runs`; PostgreSQL delivers it to all
//! listeners when — and only if — that transaction commits. A notification is a hint, not a work
//! item: the listener then claims runs as usual (`claim_runs` with SKIP LOCKED), so a missed or
//! duplicated notification costs only latency, never correctness. Keep the queue's polling
//! interval as the fallback.

use crate::store::StoreResult;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Postgres, Transaction};

/// The channel run-queueing transactions notify.
pub const RUNS_CHANNEL: &str = "hookflow_runs";

/// Queues a `hookflow_runs` notification, sent when `tx` commits. Identical notifications of one
/// transaction are collapsed by PostgreSQL, so calling this per batch is cheap.
pub async fn notify_runs(tx: &mut Transaction<'_, Postgres>) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(RUNS_CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A subscription to "a run may have been queued" hints, from any process sharing the database.
/// It holds one dedicated connection (not one of the store's pool).
pub struct WorkListener {
    listener: PgListener,
}

impl WorkListener {
    pub(super) async fn connect(options: PgConnectOptions) -> StoreResult<WorkListener> {
        // A private one-connection pool: the listener keeps its connection for its lifetime and
        // must not starve the store's pool; PgListener reconnects through it after a drop.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(RUNS_CHANNEL).await?;
        Ok(WorkListener { listener })
    }

    /// Waits until work may be available. Returns `true` after a notification and `false` when
    /// the connection was lost and re-established: notifications sent in between are gone, so
    /// the caller should look for work in both cases. Notifications already buffered are
    /// drained; under heavy load every committed batch still notifies, so a caller that claims
    /// on every wake-up should claim as many runs as it has free slots, not one per hint.
    ///
    /// Dropping the future (e.g. in `select!` with a poll timer) loses at most a hint.
    pub async fn wait(&mut self) -> StoreResult<bool> {
        let notified = self.listener.try_recv().await?.is_some();
        while self.listener.next_buffered().is_some() {}
        Ok(notified)
    }
}
