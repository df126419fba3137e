//! A [`Job`] packed with its reply channel, its result type erased, so one channel can carry jobs
//! of every type to the thread that owns a connection.

use super::conn::SqliteConn;
use crate::store::sql::{Job, panic_message};
use crate::store::{StoreError, StoreResult};
use futures::executor::block_on;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use tokio::sync::oneshot;

/// A job waiting to run, as the connection threads see it.
pub(super) trait Work: Send {
    /// Runs the job on `conn` (inside the transaction the caller opened). Returns true when it
    /// succeeded, that is when its transaction should commit. A panic is caught and becomes the
    /// job's error, built by `on_panic` from the panic message.
    fn run(&mut self, conn: &mut Connection, on_panic: fn(&str) -> StoreError) -> bool;

    /// Sends the job's result to its caller. `end` is how its transaction ended: a failed
    /// `COMMIT` turns a success into that error (a failed job keeps its own error).
    fn answer(self: Box<Self>, end: StoreResult<()>);
}

/// What the channels carry.
pub(super) type BoxWork = Box<dyn Work>;

/// Packs `job`; the receiver gets its result (or is dropped unanswered if the thread dies).
pub(super) fn pack<T: Send + 'static>(job: Job<T>) -> (BoxWork, oneshot::Receiver<StoreResult<T>>) {
    let (reply, receiver) = oneshot::channel();
    let task = Task {
        job: Some(job),
        result: None,
        reply,
    };
    (Box::new(task), receiver)
}

struct Task<T> {
    job: Option<Job<T>>,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T: Send + 'static> Work for Task<T> {
    fn run(&mut self, conn: &mut Connection, on_panic: fn(&str) -> StoreError) -> bool {
        let Some(job) = self.job.take() else {
            return false;
        };
        let mut conn = SqliteConn::new(conn);
        // `SqliteConn` answers every call synchronously, so the job's future never pends and
        // `block_on` just runs it to its end on this thread. (A job must not await anything but
        // its connection.)
        let result = match catch_unwind(AssertUnwindSafe(|| block_on(job(&mut conn)))) {
            Ok(result) => result,
            Err(payload) => Err(on_panic(&panic_message(payload.as_ref()))),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, end: StoreResult<()>) {
        let result = match (self.result, end) {
            (Some(Ok(_)), Err(error)) | (None, Err(error)) => Err(error),
            (Some(result), _) => result,
            (None, Ok(())) => Err(StoreError::Write("the job was never run".into())),
        };
        // The caller may have stopped waiting: its result has nowhere to go, which is fine.
        let _ = self.reply.send(result);
    }
}
