//! The reader threads: a small fixed pool, each owning one read-only connection.
//!
//! WAL mode lets readers run alongside the writer, each on a snapshot of committed data. The
//! threads pull jobs from one shared (multi-consumer) channel, so a job goes to whichever reader
//! is free. Each job runs in a deferred transaction: all its `SELECT`s see the same snapshot.

use super::connect::Role;
use super::task::BoxWork;
use super::worker::Worker;
use crate::store::{DbErrorKind, StoreError};
use rusqlite::Connection;
use std::path::Path;
use std::thread::{self, JoinHandle};

/// The reader pool's handle, held by the backend.
pub(super) struct ReaderPool {
    pub(super) sender: flume::Sender<BoxWork>,
    pub(super) threads: Vec<JoinHandle<()>>,
}

/// Starts one reader thread per connection in `conns` (opened by the caller, so that a
/// database that cannot be read fails `open` rather than a later read).
pub(super) fn spawn(conns: Vec<Connection>, path: &Path) -> std::io::Result<ReaderPool> {
    let (sender, receiver) = flume::unbounded::<BoxWork>();
    let mut threads = Vec::with_capacity(conns.len());
    for conn in conns {
        let worker = Worker::new(conn, path.to_path_buf(), Role::Reader, read_panicked);
        let receiver = receiver.clone();
        let thread = thread::Builder::new()
            .name("sqlite-reader".into())
            .spawn(move || serve(receiver, worker))?;
        threads.push(thread);
    }
    Ok(ReaderPool { sender, threads })
}

fn read_panicked(message: &str) -> StoreError {
    StoreError::database(DbErrorKind::Other, format!("the read panicked: {message}"))
}

/// A reader's loop: until the backend is dropped, or its connection breaks beyond repair (the
/// other readers go on; when none is left, reads report the store unavailable).
fn serve(receiver: flume::Receiver<BoxWork>, mut worker: Worker) {
    while let Ok(work) = receiver.recv() {
        if let Err(why) = worker.serve(work) {
            tracing::error!("a SQLite reader stopped: {why}");
            return;
        }
    }
}
