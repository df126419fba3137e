//! Durable state. Everything that reaches the database goes through [`Store`]; only this module
//! writes SQL. SQLite is the embedded default (one process); PostgreSQL lets several processes
//! share the work.
//!
//! The layer is written once: the logic modules (`flows`, `runs`, `batch`, `secrets`,
//! `destinations`, `plugins`, `audit`, `access`, `rows`) are plain `async fn(&mut dyn Conn, ...)`
//! over the small dialect interface in [`sql`]; [`Store`] runs them as jobs on a
//! [`sql::Backend`] (`sqlite`: a writer thread owning the one write connection plus reader
//! threads; `postgres`: a connection pool). [`open`] picks the backend from the URL, so the server
//! and the CLI never know which one they run on. Both pass the same suite (`conformance`).

/// Runs a call of the logic layer as a job on the backend:
/// `on!(self.write, [actor, id], |c| flows::delete(c, &actor, &id))`. The listed arguments are
/// turned into owned values first (`to_owned`), since a job may run on another thread.
macro_rules! on {
    ($self:ident . $how:ident, [$($own:ident),*], |$c:ident| $call:expr) => {{
        $(let $own = $own.to_owned();)*
        $self
            .$how($crate::store::sql::job(move |$c| Box::pin(async move { $call.await })))
            .await
    }};
}

pub mod access;
pub mod audit;
mod batch;
mod cache;
#[cfg(test)]
mod conformance;
mod destinations;
mod flows;
mod history;
mod open;
mod plugins;
mod postgres;
mod retention;
mod rows;
mod runs;
mod secrets;
pub mod sql;
mod sql_store;
mod sqlite;
mod types;
mod windows;

pub use audit::AuditDraft;
pub use cache::{CacheEntry, CacheRefusal};
pub use open::{DatabaseUrl, OpenOptions, OpenedStore, open, open_read_only};
pub use plugins::{PluginRemoval, PluginUser};
pub use postgres::{Hints, WorkListener};
pub use retention::{
    ArchivedEvent, ArchivedRun, RETENTION_BATCH, RetentionScope, TERMINAL_STATUSES,
};
pub use sql_store::Store;
pub use types::*;
pub use windows::{WindowRefusal, WindowWrite};

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
        matches!(
            self,
            StoreError::Database {
                kind: DbErrorKind::Data,
                ..
            }
        )
    }

    /// True when running the same transaction again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Database {
                kind: DbErrorKind::Transient,
                ..
            }
        )
    }
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Shared handle to the store.
pub type DynStore = Arc<Store>;

/// Current time as the store writes it: RFC 3339 UTC with milliseconds.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now in epoch milliseconds: the unit of lease expiry and delivery times.
pub fn epoch_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
