//! Durable state. Everything that reaches the database goes through the [`Store`] trait; only this
//! module writes SQL. SQLite is the embedded default (one process); PostgreSQL lets several
//! processes share the work. Both pass the same suite (`conformance`).

pub mod audit;
#[cfg(test)]
mod conformance;
mod postgres;
mod sqlite;
mod sqlite_destinations;
mod types;

pub use audit::AuditDraft;
pub use postgres::{Hints, PostgresStore, WorkListener};
pub use sqlite::SqliteStore;
pub use types::*;

use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;

/// Errors a backend reports. Callers match on `NotFound`/`Conflict`; the rest is internal.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("batched write failed: {0}")]
    Write(String),
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Shared handle to the active backend.
pub type DynStore = Arc<dyn Store>;

/// The one storage interface. Hot-path writes (`accept_event`, `finish_run`) are batched by the
/// backend into group commits; callers just await their own result.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The default platform and project, created on first start.
    async fn default_scope(&self) -> StoreResult<Scope>;

    /// Saves a new flow at version 1.
    async fn create_flow(
        &self,
        actor: &Actor,
        scope: &Scope,
        name: &str,
        definition: &Value,
    ) -> StoreResult<FlowRecord>;
    /// Saves a new version of an existing flow.
    async fn update_flow(
        &self,
        actor: &Actor,
        id: &str,
        name: &str,
        definition: &Value,
    ) -> StoreResult<FlowRecord>;
    /// Soft-deletes a flow; its runs stay queryable. Returns false when there was no such flow.
    async fn delete_flow(&self, actor: &Actor, id: &str) -> StoreResult<bool>;
    /// The current version of a flow.
    async fn get_flow(&self, id: &str) -> StoreResult<Option<FlowRecord>>;
    /// A specific version of a flow (also of a deleted flow, for runs that are still queued).
    async fn get_flow_version(&self, id: &str, version: i64) -> StoreResult<Option<FlowRecord>>;
    /// Flows, newest first.
    async fn list_flows(&self, limit: u32, cursor: Option<Cursor>)
    -> StoreResult<Page<FlowRecord>>;

    /// Durably records an event and queues its run, or finds the run of an earlier delivery.
    async fn accept_event(&self, event: NewEvent) -> StoreResult<Accepted>;
    /// Stores a run that already executed outside the queue (a test run) with its event and
    /// steps, in one transaction. The event is never deduplicated.
    async fn record_finished_run(&self, event: NewEvent, outcome: RunOutcome) -> StoreResult<()>;
    /// Claims up to `limit` queued runs for `owner` with a lease of `lease_ms`.
    async fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        lease_ms: i64,
    ) -> StoreResult<Vec<ClaimedRun>>;
    /// Extends the leases of every run `owner` holds. Returns how many.
    async fn renew_leases(&self, owner: &str, lease_ms: i64) -> StoreResult<u64>;
    /// Puts runs whose lease expired back in the queue. Returns how many.
    async fn requeue_expired(&self) -> StoreResult<u64>;
    /// Hands the runs `owner` holds back to the queue (graceful shutdown). Returns how many.
    async fn release_leases(&self, owner: &str) -> StoreResult<u64>;
    /// Puts every RUNNING run back in the queue: only safe when no other process can hold leases.
    async fn requeue_all_running(&self) -> StoreResult<u64>;
    /// Records a run's end. Returns false when `owner` no longer held the lease (ignored).
    async fn finish_run(&self, outcome: RunOutcome) -> StoreResult<bool>;
    /// Queues a failed run again; succeeded steps are kept and not re-run.
    async fn retry_run(&self, actor: &Actor, id: &str) -> StoreResult<RunSummary>;

    /// One run with its event and steps.
    async fn get_run(&self, id: &str) -> StoreResult<Option<RunDetail>>;
    /// Runs, newest first.
    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Page<RunSummary>>;
    /// Creates or replaces an encrypted secret. Returns true when created.
    async fn put_secret(
        &self,
        actor: &Actor,
        scope: &Scope,
        name: &str,
        nonce: &str,
        ciphertext: &str,
    ) -> StoreResult<bool>;
    /// Secret names and times of a project, by name.
    async fn list_secrets(&self, scope: &Scope) -> StoreResult<Vec<SecretInfo>>;
    /// `(name, nonce, ciphertext)` of the named secrets that exist.
    async fn get_secrets(
        &self,
        scope: &Scope,
        names: &[String],
    ) -> StoreResult<Vec<(String, String, String)>>;
    /// Deletes a secret. Returns false when there was none.
    async fn delete_secret(&self, actor: &Actor, scope: &Scope, name: &str) -> StoreResult<bool>;

    /// Appends audit events that are not part of another change (plugin installed, ...).
    async fn record_audit(&self, drafts: Vec<AuditDraft>) -> StoreResult<()>;
    /// Audit events (envelopes), newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Page<Value>>;
    /// The oldest audit events created before `before` (RFC 3339): `(seq, created, body)`.
    async fn expired_audit(
        &self,
        before: &str,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String, String)>>;
    /// Deletes audit events up to and including `seq`.
    async fn delete_audit_through(&self, seq: i64) -> StoreResult<u64>;
    /// Audit rows in chain order after `after_seq`, for verification.
    async fn audit_chain(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRow>>;

    /// Saves a new destination (audited).
    async fn create_destination(
        &self,
        actor: &Actor,
        destination: &DestinationRecord,
    ) -> StoreResult<()>;
    /// Replaces a destination's settings (audited).
    async fn update_destination(
        &self,
        actor: &Actor,
        destination: &DestinationRecord,
    ) -> StoreResult<()>;
    /// Deletes a destination and its pending deliveries (audited). False when there was none.
    async fn delete_destination(&self, actor: &Actor, id: &str) -> StoreResult<bool>;
    async fn get_destination(&self, id: &str) -> StoreResult<Option<DestinationRecord>>;
    async fn list_destinations(&self) -> StoreResult<Vec<DestinationRecord>>;
    /// Claims the oldest due entry of up to `limit` destinations (one per destination, so each
    /// destination receives its events in order, one at a time).
    async fn claim_deliveries(&self, limit: u32, lease_ms: i64) -> StoreResult<Vec<DueDelivery>>;
    /// Records an attempt, moves the entry on and updates the destination's health.
    async fn finish_delivery(&self, result: &DeliveryResult) -> StoreResult<()>;
    /// Claims, for up to `destinations` destinations, up to `per_destination` consecutive due
    /// entries from the head of each one's queue, in event order: a worker sends them one after
    /// the other over one connection, so order holds and throughput does not hinge on one
    /// database round trip per event. The default claims one entry per destination.
    async fn claim_delivery_batches(
        &self,
        destinations: u32,
        per_destination: u32,
        lease_ms: i64,
    ) -> StoreResult<Vec<DueDelivery>> {
        let _ = per_destination;
        self.claim_deliveries(destinations, lease_ms).await
    }
    /// Records a batch of attempts and hands `released` entries (claimed but not attempted,
    /// because an earlier one in their batch failed) back to the queue. The default records
    /// one at a time and leaves released entries to their lease expiry.
    async fn finish_deliveries(
        &self,
        results: &[DeliveryResult],
        released: &[String],
    ) -> StoreResult<()> {
        let _ = released;
        for result in results {
            self.finish_delivery(result).await?;
        }
        Ok(())
    }
    /// Attempts for a destination, newest first.
    async fn list_deliveries(
        &self,
        destination_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>>;
    /// Queues FAILED entries of a destination again (one event, or all). Returns how many.
    async fn redeliver(&self, destination_id: &str, selection: &Redelivery) -> StoreResult<u64>;

    /// How many runs are in each live status, for `/metrics`.
    async fn queue_depth(&self) -> StoreResult<(i64, i64)>;

    /// Stores an installed plugin component (replacing that name@version) with its audit event,
    /// in one transaction, so every restart and every process serves it.
    async fn save_plugin(&self, plugin: &StoredPlugin, draft: AuditDraft) -> StoreResult<()>;
    /// `(name, version, digest)` of every stored plugin, by name and version.
    async fn plugin_digests(&self) -> StoreResult<Vec<(String, String, String)>>;
    /// One stored plugin with its component bytes.
    async fn get_plugin(&self, name: &str, version: &str) -> StoreResult<Option<StoredPlugin>>;

    /// Records `key` in a flow's memory when `record` is set. True when the key was not
    /// known before (atomically, across processes).
    async fn remember_key(&self, flow_id: &str, key: &str, record: bool) -> StoreResult<bool>;
}

/// Current time as the store writes it: RFC 3339 UTC with milliseconds.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Turns `limit + 1` fetched rows into a page with `next`/`previous` cursors, the same for both
/// backends: a page fetched forwards has `previous` only when it was reached through a cursor; a
/// page fetched backwards always has `next`.
pub(crate) fn paginate<T>(
    mut items: Vec<T>,
    limit: u32,
    backwards: bool,
    had_cursor: bool,
    id: impl Fn(&T) -> String,
) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    if backwards {
        items.reverse();
    }
    let (has_next, has_previous) = if backwards {
        (true, more)
    } else {
        (more, had_cursor)
    };
    let next = has_next
        .then(|| items.last().map(|t| Cursor::After(id(t)).encode()))
        .flatten();
    let previous = has_previous
        .then(|| items.first().map(|t| Cursor::Before(id(t)).encode()))
        .flatten();
    Page {
        data: items,
        next,
        previous,
    }
}
