//! Durable state. Everything that reaches the database goes through the [`Store`] trait; only this
//! module writes SQL. SQLite is the embedded default (one process); PostgreSQL lets several
//! processes share the work.
//!
//! The layer is written once: the logic modules (`flows`, `runs`, `batch`, `secrets`,
//! `destinations`, `plugins`, `audit`, `rows`) are plain `async fn(&mut dyn Conn, ...)` over the
//! small dialect interface in [`sql`]; [`SqlStore`] implements [`Store`] by running them as jobs on
//! a [`sql::Backend`] (`sqlite`: a writer thread owning the one write connection plus reader
//! threads; `postgres`: a connection pool). [`open`] picks the backend from the URL, so the
//! server and the CLI never know which one they run on. Both pass the same suite (`conformance`).

pub mod audit;
mod batch;
#[cfg(test)]
mod conformance;
mod destinations;
mod flows;
mod open;
mod plugins;
mod postgres;
mod rows;
mod runs;
mod secrets;
pub mod sql;
mod sql_store;
mod sqlite;
mod types;

pub use audit::AuditDraft;
pub use open::{DatabaseUrl, OpenOptions, OpenedStore, open, open_read_only};
pub use postgres::{Hints, WorkListener};
pub use sql_store::SqlStore;
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
    /// The database refused a statement or could not be reached.
    #[error("database error: {message}")]
    Database { kind: DbErrorKind, message: String },
    #[error("migration failed: {0}")]
    Migrate(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("batched write failed: {0}")]
    Write(String),
    /// The store cannot serve at all (its writer died, ...): `/healthz` reports this.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A write on a store opened read-only (offline CLI commands).
    #[error("the database was opened read-only")]
    ReadOnly,
}

/// What kind of database failure a [`StoreError::Database`] is: it decides whether a group
/// commit isolates the requests of a failed batch ([`DbErrorKind::Data`]) or runs it again
/// ([`DbErrorKind::Transient`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// Caused by one request's content: a constraint, a type or a value the database refused.
    Data,
    /// A deadlock, serialization failure or busy database: the same transaction may succeed
    /// when run again.
    Transient,
    /// Anything else: the connection, the disk, a bug in a statement.
    Other,
}

impl StoreError {
    /// A database error of `kind`.
    pub fn database(kind: DbErrorKind, message: impl Into<String>) -> StoreError {
        StoreError::Database {
            kind,
            message: message.into(),
        }
    }

    /// True when a request's own content caused the failure.
    pub fn is_data_error(&self) -> bool {
        matches!(self, StoreError::Database { kind: DbErrorKind::Data, .. })
    }

    /// True when running the same transaction again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Database { kind: DbErrorKind::Transient, .. })
    }
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

    /// Ok when the store can serve reads and writes; otherwise why not (its writer died, the
    /// database is unreachable). `/healthz` answers with this.
    async fn health(&self) -> StoreResult<()>;

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
    /// Claims, for up to `destinations` destinations, up to `per_destination` consecutive due
    /// entries from the head of each one's queue, in event order: a worker sends them one after
    /// the other over one connection, so order holds and throughput does not hinge on one
    /// database round trip per event.
    async fn claim_delivery_batches(
        &self,
        destinations: u32,
        per_destination: u32,
        lease_ms: i64,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Records a batch of attempts and hands `released` entries (claimed but not attempted,
    /// because an earlier one in their batch failed) back to the queue.
    async fn finish_deliveries(
        &self,
        results: &[DeliveryResult],
        released: &[String],
    ) -> StoreResult<()>;
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

    /// Test hook: runs a write job that panics.
    #[cfg(test)]
    async fn panic_in_write_for_test(&self) -> StoreResult<()>;
    /// Test hook: makes the backend's writer stop as if it had failed with `reason`.
    #[cfg(test)]
    async fn stop_writer_for_test(&self, reason: &str);
}

/// Current time as the store writes it: RFC 3339 UTC with milliseconds.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
