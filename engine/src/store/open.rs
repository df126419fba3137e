//! Opening a store from a database URL: the one place that decides which backend a URL means,
//! so `config`, `server` and `cli` never do.

use super::postgres::{DEFAULT_POOL_SIZE, PgBackend, WorkListener};
use super::sql::{Backend, job};
use super::sqlite::{SqliteBackend, SqliteOptions};
use super::{DynStore, Store, StoreError, StoreResult, destinations, plugins, runs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A parsed database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH` or `sqlite:PATH` (query parameters such as `?mode=rwc` are ignored: the
    /// store sets its own options): one process owns the file.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`: any number of processes share the database.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `url`, or says why it is not one hookflow can use.
    pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            return Err(format!(
                "unsupported database URL {:?}; use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE",
                DatabaseUrl::redact(url)
            ));
        };
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(
                "a SQLite database needs a file path (sqlite://PATH); in-memory databases do not keep runs".into(),
            );
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }

    /// True when several processes may share the database (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres(_))
    }

    /// The URL fit for logs and messages: any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => DatabaseUrl::redact(url),
        }
    }

    fn redact(url: &str) -> String {
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let credentials = &url[scheme_end + 3..at];
                match credentials.split_once(':') {
                    Some((user, _)) => {
                        format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                    }
                    None => url.to_string(),
                }
            }
            _ => url.to_string(),
        }
    }
}

/// How to open a store for a server.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// SQLite: `synchronous=FULL` (a commit survives power loss) instead of NORMAL (it survives
    /// a process crash).
    pub sqlite_synchronous_full: bool,
    /// PostgreSQL: connections in this process's pool.
    pub pool_size: u32,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            sqlite_synchronous_full: true,
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

/// A store opened for a server, with what comes with it.
pub struct OpenedStore {
    pub store: DynStore,
    /// PostgreSQL: hears other processes queue runs and install plugins.
    pub listener: Option<WorkListener>,
    /// Runs a previous process left RUNNING and this one put back in the queue (SQLite, whose
    /// file lock proves no other process can be running them; on PostgreSQL they come back when
    /// their lease expires, since another live process may hold them).
    pub recovered: u64,
}

/// Opens the store a server runs on: migrates, creates the default scope, and on SQLite takes
/// the database's exclusive lock (held by the store for its life) and re-queues what a previous
/// process left RUNNING.
pub async fn open(url: &DatabaseUrl, options: &OpenOptions) -> StoreResult<OpenedStore> {
    match url {
        DatabaseUrl::Postgres(text) => {
            let backend = Arc::new(PgBackend::open(text, options.pool_size).await?);
            init(&*backend).await?;
            let listener = backend.listen_for_work().await?;
            Ok(OpenedStore {
                store: Arc::new(Store::new(backend)),
                listener: Some(listener),
                recovered: 0,
            })
        }
        DatabaseUrl::Sqlite(path) => {
            let path = path.clone();
            let sqlite = SqliteOptions {
                synchronous_full: options.sqlite_synchronous_full,
                ..SqliteOptions::default()
            };
            // Opening migrates, which can take a while on a large file: off the async runtime.
            let backend = tokio::task::spawn_blocking(move || SqliteBackend::open(&path, sqlite))
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening SQLite: {e}")))??;
            let backend = Arc::new(backend);
            init(&*backend).await?;
            // The lock says no other process has this file: whatever the last owner had
            // claimed (runs, deliveries) is free again now.
            let recovered = backend
                .write(job(|c| {
                    Box::pin(async move {
                        destinations::release_all_leases(c).await?;
                        runs::requeue_all_running(c).await
                    })
                }))
                .await?;
            Ok(OpenedStore {
                store: Arc::new(Store::new(backend)),
                listener: None,
                recovered,
            })
        }
    }
}

/// Opens a store for offline commands (`audit verify`, `audit export`, `audit list`) beside a
/// server that may be running on it: read-only, without migrating; a write answers
/// [`StoreError::ReadOnly`].
pub async fn open_read_only(url: &DatabaseUrl) -> StoreResult<DynStore> {
    match url {
        DatabaseUrl::Postgres(text) => Ok(Arc::new(Store::new(Arc::new(
            PgBackend::open_read_only(text).await?,
        )))),
        DatabaseUrl::Sqlite(path) => {
            let path: PathBuf = path.clone();
            let backend = tokio::task::spawn_blocking(move || {
                SqliteBackend::open_read_only(Path::new(&path))
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening SQLite: {e}")))??;
            Ok(Arc::new(Store::new(Arc::new(backend))))
        }
    }
}

async fn init<B: Backend>(backend: &B) -> StoreResult<()> {
    backend
        .write(job(|c| Box::pin(plugins::ensure_default_scope(c))))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_their_backend_in_one_place() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/hf/hookflow.db?mode=rwc").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("/var/lib/hf/hookflow.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:data/hookflow.db").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("data/hookflow.db"))
        );
        let pg = DatabaseUrl::parse("postgresql://u:secret@db:5432/hf").unwrap();
        assert!(pg.is_shared());
        assert_eq!(pg.redacted(), "postgresql://u:***@db:5432/hf");
        assert!(
            DatabaseUrl::parse("mysql://x")
                .unwrap_err()
                .contains("sqlite://PATH")
        );
        assert!(DatabaseUrl::parse("sqlite::memory:").is_err());
    }
}
