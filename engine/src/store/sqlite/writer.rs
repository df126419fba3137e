//! The writer thread: the only connection that writes.
//!
//! SQLite allows one writer at a time, so hookflow keeps exactly one write connection, owned by
//! one thread that runs write jobs one after the other, each in its own `BEGIN IMMEDIATE`
//! transaction. Rows never need locking, and a job's statements run on this thread directly.
//!
//! If the thread ever stops other than by the backend being dropped (its connection broke beyond
//! repair, a bug panicked outside a job), [`Health`] records why: `/healthz` reports it and
//! every later write fails with that reason instead of hanging.

use super::connect::Role;
use super::task::BoxWork;
use super::worker::Worker;
use crate::store::StoreError;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

/// What the writer's channel carries.
pub(super) enum Msg {
    /// A write job.
    Work(BoxWork),
    /// Stop as if the writer had failed for `reason` (tests of the health report).
    #[cfg(test)]
    Stop(String),
}

/// Why the writer thread is dead, if it is: shared by the thread and the backend.
#[derive(Clone, Default)]
pub(super) struct Health(Arc<Mutex<Option<String>>>);

impl Health {
    /// The reason the writer died, or `None` while it serves.
    pub(super) fn dead(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, reason: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }
}

/// The writer thread's handle, held by the backend.
pub(super) struct WriterHandle {
    pub(super) sender: flume::Sender<Msg>,
    pub(super) thread: JoinHandle<()>,
}

/// Starts the writer thread on `conn` (already migrated). `path` and `synchronous_full` let it
/// reopen the connection the same way.
pub(super) fn spawn(
    conn: Connection,
    path: PathBuf,
    synchronous_full: bool,
    health: Health,
) -> std::io::Result<WriterHandle> {
    let (sender, receiver) = flume::unbounded();
    let worker = Worker::new(
        conn,
        path,
        Role::Writer { synchronous_full },
        write_panicked,
    );
    let thread = thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || serve(receiver, worker, health))?;
    Ok(WriterHandle { sender, thread })
}

fn write_panicked(message: &str) -> StoreError {
    StoreError::Write(format!("the write panicked: {message}"))
}

/// The writer's loop: until every sender is gone (the backend was dropped) or the connection
/// cannot be reopened.
fn serve(receiver: flume::Receiver<Msg>, mut worker: Worker, health: Health) {
    // Declared in the body, so it is dropped (recording the reason) before `receiver`, a
    // parameter: by the time queued jobs see their reply channel closed, the reason is there.
    let mut watch = DeathWatch {
        health,
        reason: Some("the SQLite writer thread stopped unexpectedly".into()),
    };
    loop {
        let Ok(msg) = receiver.recv() else {
            // Every sender is gone: the backend was dropped. Not a failure.
            watch.reason = None;
            return;
        };
        match msg {
            Msg::Work(work) => {
                if let Err(why) = worker.serve(work) {
                    tracing::error!("the SQLite writer stopped: {why}");
                    watch.reason = Some(format!("the SQLite writer stopped: {why}"));
                    return;
                }
            }
            #[cfg(test)]
            Msg::Stop(reason) => {
                watch.reason = Some(reason);
                return;
            }
        }
    }
}

/// Records why the writer thread ended, whichever way it ends (a panic included), unless it was
/// told that the end is a normal shutdown.
struct DeathWatch {
    health: Health,
    reason: Option<String>,
}

impl Drop for DeathWatch {
    fn drop(&mut self) {
        let reason = if thread::panicking() {
            Some("the SQLite writer thread panicked".to_string())
        } else {
            self.reason.take()
        };
        if let Some(reason) = reason {
            self.health.set(reason);
        }
    }
}
