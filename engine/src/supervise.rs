//! Background tasks under supervision: the delivery worker, the queue dispatcher, the scheduler,
//! retention, plugin sync and the notification relay each run in [`Supervisor::spawn`]. A task
//! that panics (or ends while the server is not shutting down) is logged with its name and panic
//! message, counted in `hookflow_background_task_restarts_total{task="…"}` and started again
//! after a backoff (1 s doubling to 30 s; back to 1 s once it has run for a minute). A task that
//! ends at shutdown is not restarted.
//!
//! `/healthz` answers 503 naming the task ([`Tasks::health`]) while a task is down (waiting for
//! its restart) and while it keeps panicking: 3 panics within 10 minutes is a crash loop that a
//! restart of the task does not fix, so the process should be looked at (or replaced). A single
//! panic followed by a good restart is only in the log and the counter.

use futures::FutureExt as _;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Restart and health settings.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Wait before the first restart; doubled after each further panic.
    pub first_backoff: Duration,
    /// Longest wait before a restart.
    pub max_backoff: Duration,
    /// A task that ran this long before panicking starts again from `first_backoff`.
    pub reset_after: Duration,
    /// This many panics of one task within `window` make the process unhealthy.
    pub crash_loop: usize,
    pub window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
            crash_loop: 3,
            window: Duration::from_secs(600),
        }
    }
}

/// Panic times kept per task (enough to count any sensible crash-loop threshold).
const MAX_KEPT_FAILURES: usize = 64;

/// What is known about one task.
#[derive(Debug, Default)]
struct TaskState {
    restarts: u64,
    /// Set from a panic until the restart.
    down: bool,
    /// When it panicked within the policy's window, oldest first.
    recent: VecDeque<Instant>,
    last_failure: String,
}

/// The supervised tasks of a process: restart counters and health. `/metrics` reports it and
/// `/healthz` asks it (it lives in [`crate::metrics::Metrics`]).
#[derive(Debug, Default)]
pub struct Tasks {
    tasks: Mutex<BTreeMap<&'static str, TaskState>>,
    /// The crash-loop rule `health` applies (set by the supervisor).
    policy: Mutex<Policy>,
}

impl Tasks {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<&'static str, TaskState>) -> R) -> R {
        f(&mut self.tasks.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn policy(&self) -> Policy {
        *self.policy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(reason)` while a task is down or crash-looping, naming it.
    pub fn health(&self) -> Result<(), String> {
        let policy = self.policy();
        let now = Instant::now();
        let problems: Vec<String> = self.with(|tasks| {
            tasks
                .iter_mut()
                .filter_map(|(name, state)| {
                    state
                        .recent
                        .retain(|t| now.duration_since(*t) < policy.window);
                    if state.down {
                        Some(format!(
                            "background task {name:?} is down, restarting after: {}",
                            state.last_failure
                        ))
                    } else if state.recent.len() >= policy.crash_loop {
                        Some(format!(
                            "background task {name:?} failed {} times in the last {} s (last: {})",
                            state.recent.len(),
                            policy.window.as_secs(),
                            state.last_failure
                        ))
                    } else {
                        None
                    }
                })
                .collect()
        });
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Restarts of `task` so far.
    pub fn restarts(&self, task: &str) -> u64 {
        self.with(|tasks| tasks.get(task).map_or(0, |s| s.restarts))
    }

    /// Every task by name: its restarts so far and whether it is down (for `/metrics`).
    pub fn snapshot(&self) -> Vec<TaskSnapshot> {
        self.with(|tasks| {
            tasks
                .iter()
                .map(|(name, state)| TaskSnapshot {
                    name,
                    restarts: state.restarts,
                    down: state.down,
                })
                .collect()
        })
    }
}

/// One task as [`Tasks::snapshot`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSnapshot {
    pub name: &'static str,
    pub restarts: u64,
    /// Between a failure and the restart.
    pub down: bool,
}

/// Starts background tasks and restarts them when they fail.
#[derive(Clone)]
pub struct Supervisor {
    tasks: Arc<Tasks>,
    policy: Policy,
}

impl Supervisor {
    /// A supervisor reporting into `tasks`.
    pub fn new(tasks: Arc<Tasks>, policy: Policy) -> Supervisor {
        *tasks.policy.lock().unwrap_or_else(|e| e.into_inner()) = policy;
        Supervisor { tasks, policy }
    }

    /// Runs `start()` as task `name` until it returns at shutdown. A panic, or a return before
    /// `shutdown` is set, restarts it (with a fresh `start()`) after the backoff, unless
    /// shutdown comes first. The handle ends when the task has ended for good.
    pub fn spawn<F, Fut>(
        &self,
        name: &'static str,
        mut shutdown: watch::Receiver<bool>,
        mut start: F,
    ) -> JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tasks, policy) = (self.tasks.clone(), self.policy);
        tasks.with(|t| {
            t.entry(name).or_default();
        });
        #[cfg(debug_assertions)]
        let mut injected = injected_panics(name);
        tokio::spawn(async move {
            let mut backoff = policy.first_backoff;
            loop {
                let task = start();
                #[cfg(debug_assertions)]
                let task = {
                    let panic_now = injected > 0;
                    injected = injected.saturating_sub(1);
                    async move {
                        if panic_now {
                            panic!("injected by HOOKFLOW_TEST_PANIC_TASK");
                        }
                        task.await
                    }
                };
                let started = Instant::now();
                let failure = match AssertUnwindSafe(task).catch_unwind().await {
                    Ok(()) if *shutdown.borrow() => return,
                    Ok(()) => "ended while the server was not shutting down".to_string(),
                    Err(panic) => {
                        format!("panicked: {}", crate::store::sql::panic_message(&*panic))
                    }
                };
                if started.elapsed() >= policy.reset_after {
                    backoff = policy.first_backoff;
                }
                tracing::error!(
                    task = name,
                    failure = %failure,
                    restart_in_ms = backoff.as_millis() as u64,
                    "background task failed; restarting it"
                );
                tasks.with(|t| {
                    let state = t.entry(name).or_default();
                    state.down = true;
                    state.last_failure = failure;
                    state.recent.push_back(Instant::now());
                    if state.recent.len() > MAX_KEPT_FAILURES {
                        state.recent.pop_front();
                    }
                });
                let stopping = *shutdown.borrow();
                let stop = stopping
                    || tokio::select! {
                        _ = tokio::time::sleep(backoff) => *shutdown.borrow(),
                        changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
                    };
                if stop {
                    return;
                }
                backoff = (backoff * 2).min(policy.max_backoff);
                tasks.with(|t| {
                    let state = t.entry(name).or_default();
                    state.down = false;
                    state.restarts += 1;
                });
            }
        })
    }
}

/// Debug builds only (tests): `HOOKFLOW_TEST_PANIC_TASK=<task>:<n>` makes the first `n` starts
/// of `task` panic, so end-to-end tests can watch the supervisor work in the real server.
/// Release builds have no such hook.
#[cfg(debug_assertions)]
fn injected_panics(name: &str) -> usize {
    std::env::var("HOOKFLOW_TEST_PANIC_TASK")
        .ok()
        .and_then(|v| {
            let (task, n) = v.split_once(':')?;
            (task == name).then(|| n.parse().ok()).flatten()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn until(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Regression (hardening I, "a background task that panics is invisible"): the delivery
    /// worker and the other background tasks were spawned with nothing watching their handles,
    /// so a panic stopped them for good while `/healthz` stayed green.
    #[tokio::test]
    async fn a_background_task_that_panics_is_visible_and_restarted() {
        let tasks = Arc::new(Tasks::default());
        let policy = Policy {
            first_backoff: Duration::from_millis(300),
            max_backoff: Duration::from_millis(400),
            reset_after: Duration::from_secs(60),
            crash_loop: 2,
            window: Duration::from_millis(1500),
        };
        let supervisor = Supervisor::new(tasks.clone(), policy);
        let (stop, shutdown) = watch::channel(false);
        let starts = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        let handle = supervisor.spawn("flaky", shutdown.clone(), {
            let (starts, running) = (starts.clone(), running.clone());
            let shutdown = shutdown.clone();
            move || {
                let (starts, running) = (starts.clone(), running.clone());
                let mut shutdown = shutdown.clone();
                async move {
                    if starts.fetch_add(1, Ordering::SeqCst) < 2 {
                        panic!("boom {}", starts.load(Ordering::SeqCst));
                    }
                    running.store(1, Ordering::SeqCst);
                    let _ = shutdown.wait_for(|s| *s).await;
                }
            }
        });
        let flaky = |restarts, down| {
            vec![TaskSnapshot {
                name: "flaky",
                restarts,
                down,
            }]
        };
        assert_eq!(tasks.snapshot(), flaky(0, false));

        // First panic: down (and named) until the restart.
        until("the first panic", || tasks.health().is_err()).await;
        let reason = tasks.health().unwrap_err();
        assert!(
            reason.contains("\"flaky\" is down") && reason.contains("panicked: boom 1"),
            "{reason}"
        );
        // Second panic, then it runs: two restarts, and two panics within the window are a
        // crash loop, reported while the window lasts.
        until("the task runs", || running.load(Ordering::SeqCst) == 1).await;
        assert_eq!(tasks.restarts("flaky"), 2);
        let reason = tasks.health().unwrap_err();
        assert!(
            reason.contains("\"flaky\" failed 2 times") && reason.contains("boom 2"),
            "{reason}"
        );
        assert_eq!(tasks.snapshot(), flaky(2, false));
        until("the window passes", || tasks.health().is_ok()).await;

        // Returning at shutdown ends it for good.
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("the supervisor ends at shutdown")
            .unwrap();
        assert_eq!(
            starts.load(Ordering::SeqCst),
            3,
            "not restarted at shutdown"
        );
        assert_eq!(tasks.restarts("flaky"), 2);
    }

    #[tokio::test]
    async fn a_task_ending_early_is_restarted_and_shutdown_cuts_the_backoff() {
        let tasks = Arc::new(Tasks::default());
        let supervisor = Supervisor::new(tasks.clone(), Policy::default());
        let (stop, shutdown) = watch::channel(false);
        let starts = Arc::new(AtomicUsize::new(0));
        let handle = supervisor.spawn("quitter", shutdown, {
            let starts = starts.clone();
            move || {
                starts.fetch_add(1, Ordering::SeqCst);
                async {}
            }
        });
        until("it ended early", || tasks.health().is_err()).await;
        assert!(
            tasks.health().unwrap_err().contains("ended while"),
            "{:?}",
            tasks.health()
        );
        // Shutdown during the 1 s backoff: no restart, and no waiting for the backoff.
        let asked = Instant::now();
        stop.send(true).unwrap();
        handle.await.unwrap();
        assert!(asked.elapsed() < Duration::from_millis(500));
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert_eq!(tasks.restarts("quitter"), 0);
    }
}
