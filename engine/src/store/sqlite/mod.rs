//! The embedded SQLite backend (WAL mode): one writer thread, a few reader threads.
//!
//! SQLite allows one writer at a time. Rather than a pool whose connections queue for the write
//! lock, the backend keeps a single write connection owned by a dedicated thread ([`writer`]);
//! write jobs are sent to it and run there one after the other, each in its own transaction, with
//! every statement a direct call on the connection. Reads go to a small pool of threads with
//! read-only connections ([`reader`]), which WAL mode lets run alongside the writer.
//!
//! A lock file keeps a second hookflow process off the same database ([`lock`]); offline CLI
//! commands open the database read-only instead, without the lock, next to a running server.

mod conn;
mod connect;
mod error;
mod lock;
mod migrate;
mod reader;
mod task;
#[cfg(test)]
mod tests;
mod worker;
mod writer;

use crate::store::sql::{Backend, BoxFut, Job, job};
use crate::store::{StoreError, StoreResult};
use connect::Role;
use reader::ReaderPool;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};
use writer::{Health, Msg, WriterHandle};

/// How to open a database for serving.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// `PRAGMA synchronous`: `FULL` (true) syncs the WAL at every commit, so a committed
    /// transaction survives power loss; `NORMAL` (false) syncs only at checkpoints, so commits
    /// survive a crash of the process but the last ones may roll back on power loss (the database
    /// stays consistent either way). `NORMAL` commits much faster on slow disks.
    pub synchronous_full: bool,
    /// Reader threads (connections), at least 1.
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            synchronous_full: true,
            readers: 4,
        }
    }
}

/// The SQLite [`Backend`].
///
/// Dropping it stops its threads once they have finished the jobs already sent to them, and
/// waits for them (the writer closes its connection before the lock is released).
pub struct SqliteBackend {
    path: PathBuf,
    /// `None` when opened read-only.
    writer: Option<WriterHandle>,
    /// `None` only while dropping.
    readers: Option<flume::Sender<task::BoxWork>>,
    reader_threads: Vec<JoinHandle<()>>,
    health: Health,
    /// The exclusive lock on `<path>.lock`, held for as long as the backend lives (`None` when
    /// read-only). Released after the threads have stopped: see `Drop`.
    lock: Option<File>,
}

impl SqliteBackend {
    /// Opens the database at `path` for serving: creates it (and its directory) if missing,
    /// takes the lock that keeps other hookflow processes off it, applies pending migrations and
    /// starts the writer thread and `options.readers` reader threads. Quick and synchronous (it
    /// may be called from inside an async runtime).
    pub fn open(path: &Path, options: SqliteOptions) -> StoreResult<SqliteBackend> {
        let path = lock::canonical_path(path)?;
        let lock = lock::acquire(&path)?;
        let mut conn = connect::open(
            &path,
            Role::Writer {
                synchronous_full: options.synchronous_full,
            },
        )?;
        migrate::run(&mut conn)?;
        let readers = open_readers(&path, options.readers)?;
        let health = Health::default();
        let writer = writer::spawn(conn, path.clone(), options.synchronous_full, health.clone())
            .map_err(|e| thread_failed("writer", e))?;
        let mut backend = SqliteBackend {
            path,
            writer: Some(writer),
            readers: None,
            reader_threads: Vec::new(),
            health,
            lock: Some(lock),
        };
        // Built before the readers start, so that if they fail `Drop` still stops the writer.
        backend.start_readers(readers)?;
        Ok(backend)
    }

    /// Opens the database at `path` for reading only (offline CLI commands, possibly while a
    /// server is running on it): no lock, no migrations, no writer (every write fails with
    /// [`StoreError::ReadOnly`]). The database must exist and have the schema this build needs.
    pub fn open_read_only(path: &Path) -> StoreResult<SqliteBackend> {
        let exists = path
            .try_exists()
            .map_err(|e| StoreError::Unavailable(format!("cannot read {}: {e}", path.display())))?;
        if !exists {
            return Err(StoreError::NotFound(format!("database {}", path.display())));
        }
        let readers = open_readers(path, SqliteOptions::default().readers)?;
        let have = match readers.first() {
            Some(conn) => migrate::applied_version(conn)?,
            None => 0,
        };
        let need = migrate::latest_version();
        if have < need {
            return Err(StoreError::Unavailable(format!(
                "the database at {} has schema version {have}; this hookflow needs {need}: \
                 start `hookflow serve` on it once to upgrade",
                path.display()
            )));
        }
        let mut backend = SqliteBackend {
            path: path.to_path_buf(),
            writer: None,
            readers: None,
            reader_threads: Vec::new(),
            health: Health::default(),
            lock: None,
        };
        backend.start_readers(readers)?;
        Ok(backend)
    }

    /// The database file (canonical when opened for serving).
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn start_readers(&mut self, conns: Vec<rusqlite::Connection>) -> StoreResult<()> {
        let ReaderPool { sender, threads } =
            reader::spawn(conns, &self.path).map_err(|e| thread_failed("reader", e))?;
        self.readers = Some(sender);
        self.reader_threads = threads;
        Ok(())
    }

    /// Why the store cannot write, once the writer thread has stopped for good; `Closed` if it
    /// stopped without a reason (only while shutting down).
    fn writer_gone(&self) -> StoreError {
        match self.health.dead() {
            Some(reason) => StoreError::Unavailable(reason),
            None => StoreError::Closed,
        }
    }
}

/// Opens `count` (at least one) read-only connections.
fn open_readers(path: &Path, count: usize) -> StoreResult<Vec<rusqlite::Connection>> {
    (0..count.max(1))
        .map(|_| connect::open(path, Role::Reader))
        .collect()
}

fn thread_failed(which: &str, error: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("cannot start the SQLite {which} thread: {error}"))
}

impl Backend for SqliteBackend {
    fn write<T: Send + 'static>(&self, job: Job<T>) -> BoxFut<'_, StoreResult<T>> {
        Box::pin(async move {
            let Some(writer) = &self.writer else {
                return Err(StoreError::ReadOnly);
            };
            if let Some(reason) = self.health.dead() {
                return Err(StoreError::Unavailable(reason));
            }
            let (work, reply) = task::pack(job);
            // Once sent, the job runs to its end even if this future is dropped.
            if writer.sender.send(Msg::Work(work)).is_err() {
                return Err(self.writer_gone());
            }
            reply.await.unwrap_or_else(|_| Err(self.writer_gone()))
        })
    }

    fn read<T: Send + 'static>(&self, job: Job<T>) -> BoxFut<'_, StoreResult<T>> {
        Box::pin(async move {
            let Some(readers) = &self.readers else {
                return Err(StoreError::Closed);
            };
            let (work, reply) = task::pack(job);
            let readers_gone =
                || StoreError::Unavailable("every SQLite reader connection has failed".into());
            if readers.send(work).is_err() {
                return Err(readers_gone());
            }
            reply.await.unwrap_or_else(|_| Err(readers_gone()))
        })
    }

    fn health(&self) -> BoxFut<'_, StoreResult<()>> {
        Box::pin(async move {
            if let Some(reason) = self.health.dead() {
                return Err(StoreError::Unavailable(reason));
            }
            let probe =
                job(|c| Box::pin(async move { c.query("SELECT 1", Vec::new()).await.map(drop) }));
            self.read(probe).await
        })
    }

    fn batch_writers(&self) -> usize {
        1
    }

    /// Makes the writer thread stop as if it had failed with `reason`, and waits until it has
    /// (so that [`Backend::health`] reports it as soon as this returns).
    #[cfg(test)]
    fn stop_writer_for_test(&self, reason: &str) {
        let Some(writer) = &self.writer else {
            return;
        };
        if writer.sender.send(Msg::Stop(reason.to_string())).is_err() {
            return;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.health.dead().is_none() && std::time::Instant::now() < deadline {
            thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        // Closing the channels ends the threads once they have drained them.
        let writer = self.writer.take();
        self.readers = None;
        let mut threads = std::mem::take(&mut self.reader_threads);
        if let Some(WriterHandle { sender, thread }) = writer {
            drop(sender);
            threads.insert(0, thread);
        }
        for thread in threads {
            // A job that drops the last handle to the store runs on one of these threads: it
            // must not wait for itself.
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
        // Only now, with the writer's connection closed, may another process take the database.
        self.lock = None;
    }
}
