//! The threads plugin code runs on, apart from the runtime that serves HTTP intake.
//!
//! A CPU-bound step gives the CPU back only at an epoch tick (every 5 ms); run on the server's
//! runtime, dozens of such steps made an intake request wait behind their slices (issue 18:
//! intake p99 73 times its quiet value). On threads of their own, at a lower priority (nice
//! [`NICE`]), the OS scheduler lets intake preempt them whenever it has work, and the steps share
//! what is left. The hand-over costs a wake-up of a sandbox thread and one back per step.

use std::future::Future;
use tokio::runtime::Runtime;
use tokio::task::JoinError;

/// How much less the sandbox threads weigh than the server's (Linux nice value, 0 to 19).
const NICE: i32 = 10;

/// The sandbox's own multi-thread runtime; shut down without waiting when dropped.
pub struct SandboxThreads(Option<Runtime>);

impl SandboxThreads {
    /// `threads` worker threads named `hookflow-sandbox`.
    pub fn new(threads: usize) -> std::io::Result<SandboxThreads> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("hookflow-sandbox")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        Ok(SandboxThreads(Some(runtime)))
    }

    /// Runs `work` on the sandbox threads and waits for it. Dropping the returned future (the
    /// run was cancelled) cancels the work too.
    pub async fn run<F>(&self, work: F) -> Result<F::Output, JoinError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.0.as_ref().expect("sandbox runtime is running");
        let task = runtime.spawn(work);
        let _cancel = AbortOnDrop(task.abort_handle());
        task.await
    }
}

impl Drop for SandboxThreads {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which panics inside another runtime
        // (the server's, or a test's); steps still running are cancelled instead.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lowers the calling thread's priority. On Linux `setpriority(PRIO_PROCESS, 0, ..)` applies to
/// the calling thread only. Failing (a sandboxed container) leaves the default priority.
fn lower_priority() {
    // SAFETY: setpriority takes no pointers; it only changes the calling thread's nice value.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
    if result != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "could not lower the priority of a sandbox thread"
        );
    }
}
