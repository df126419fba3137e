//! Waking every process sharing the database, with PostgreSQL LISTEN/NOTIFY.
//!
//! Every transaction that puts a run in the queue (accepting events, retrying, re-queueing after
//! expired or released leases) issues `NOTIFY hookflow_runs`, and installing a plugin issues
//! `NOTIFY hookflow_plugins` (through [`Conn::notify`](crate::store::sql::Conn::notify)); PostgreSQL delivers them to all listeners when — and only if — that
//! transaction commits. A notification is a hint, not a work item: the listener then claims runs
//! as usual (`claim_runs` with SKIP LOCKED) or compares plugin digests, so a missed or duplicated
//! notification costs only latency, never correctness. Keep polling as the fallback.

use crate::store::StoreResult;
use crate::store::plugins::PLUGINS_CHANNEL;
use crate::store::runs::RUNS_CHANNEL;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

/// What a [`WorkListener`] heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hints {
    /// Runs may have been queued.
    pub runs: bool,
    /// A plugin may have been installed.
    pub plugins: bool,
}

/// A subscription to "a run may have been queued" and "a plugin was installed" hints, from any
/// process sharing the database.
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
        listener.listen_all([RUNS_CHANNEL, PLUGINS_CHANNEL]).await?;
        Ok(WorkListener { listener })
    }

    /// Waits for the next hints. After the connection was lost and re-established every hint
    /// is set: notifications sent in between are gone, so the caller should look for both.
    /// Notifications already buffered are folded in; under heavy load every committed batch
    /// still notifies, so a caller that claims on every wake-up should claim as many runs as it
    /// has free slots, not one per hint.
    ///
    /// Dropping the future (e.g. in `select!` with a poll timer) loses at most a hint.
    pub async fn wait(&mut self) -> StoreResult<Hints> {
        let Some(first) = self.listener.try_recv().await? else {
            return Ok(Hints {
                runs: true,
                plugins: true,
            });
        };
        let mut hints = Hints {
            runs: false,
            plugins: false,
        };
        let mut note = |channel: &str| match channel {
            PLUGINS_CHANNEL => hints.plugins = true,
            _ => hints.runs = true,
        };
        note(first.channel());
        while let Some(more) = self.listener.next_buffered() {
            note(more.channel());
        }
        Ok(hints)
    }
}
