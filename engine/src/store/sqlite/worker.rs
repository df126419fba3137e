//! What the writer and the reader threads have in common: running one job at a time in a
//! transaction on a connection they own, and replacing that connection when it breaks.

use super::connect::{self, Role};
use super::error::is_busy;
use super::task::BoxWork;
use crate::store::StoreError;
use rusqlite::Connection;
use std::path::PathBuf;

/// A connection and how to open it again.
pub(super) struct Worker {
    conn: Connection,
    path: PathBuf,
    role: Role,
    /// `BEGIN IMMEDIATE` for the writer (it takes the write lock up front, so a job never fails
    /// half-way for want of it); a deferred `BEGIN` for readers (one snapshot for all the job's
    /// statements).
    begin: &'static str,
    /// The error a panicking job is answered with.
    on_panic: fn(&str) -> StoreError,
}

impl Worker {
    pub(super) fn new(
        conn: Connection,
        path: PathBuf,
        role: Role,
        on_panic: fn(&str) -> StoreError,
    ) -> Worker {
        let begin = match role {
            Role::Writer { .. } => "BEGIN IMMEDIATE",
            Role::Reader => "BEGIN",
        };
        Worker {
            conn,
            path,
            role,
            begin,
            on_panic,
        }
    }

    /// Runs `work` in one transaction (committed if it succeeds, rolled back if it fails or
    /// panics) and answers it. A busy database only fails the job. Any other failure of
    /// `BEGIN`/`COMMIT`/`ROLLBACK`, or a transaction left open, means the connection is broken
    /// (I/O error, file gone, ...): it is reopened. `Err` is why reopening failed too: the
    /// connection is gone and the thread must stop.
    pub(super) fn serve(&mut self, mut work: BoxWork) -> Result<(), String> {
        if let Err(error) = self.conn.execute_batch(self.begin) {
            let broken = !is_busy(&error) || !self.conn.is_autocommit();
            let message = error.to_string();
            work.answer(Err(error.into()));
            return if broken {
                self.reopen(&message)
            } else {
                Ok(())
            };
        }
        let ok = work.run(&mut self.conn, self.on_panic);
        let end = self.end(ok);
        let broken = match &end {
            Ok(()) => None,
            Err(error) if is_busy(error) => None,
            Err(error) => Some(error.to_string()),
        };
        let broken = broken.or_else(|| {
            (!self.conn.is_autocommit()).then(|| "a transaction was left open".to_string())
        });
        work.answer(end.map_err(StoreError::from));
        match broken {
            Some(why) => self.reopen(&why),
            None => Ok(()),
        }
    }

    /// Commits (`ok`) or rolls back the job's transaction. A failed `COMMIT` is rolled back, so
    /// the transaction never stays open.
    fn end(&mut self, ok: bool) -> rusqlite::Result<()> {
        if self.conn.is_autocommit() {
            // SQLite already rolled back (some errors do: a full disk, an I/O error, ...).
            return if ok {
                Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some("the transaction was rolled back before it could commit".into()),
                ))
            } else {
                Ok(())
            };
        }
        if !ok {
            return self.conn.execute_batch("ROLLBACK");
        }
        let committed = self.conn.execute_batch("COMMIT");
        if committed.is_err() && !self.conn.is_autocommit() {
            // What the caller hears about is the COMMIT's failure.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        committed
    }

    /// Replaces the connection with a new one (same flags and pragmas).
    fn reopen(&mut self, why: &str) -> Result<(), String> {
        tracing::warn!(
            path = %self.path.display(),
            "reopening a SQLite connection after it failed: {why}"
        );
        match connect::open(&self.path, self.role) {
            Ok(conn) => {
                // The old connection closes here, rolling back whatever it still had open.
                self.conn = conn;
                Ok(())
            }
            Err(error) => Err(format!(
                "its connection to {} broke ({why}) and could not be reopened: {error}",
                self.path.display()
            )),
        }
    }
}
