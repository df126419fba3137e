//! The run queue: claims queued runs from the store under a lease, executes them with bounded
//! concurrency, reports their outcome, and wakes anyone waiting for a run to finish (`/sync`).
//!
//! Work is found two ways: intake wakes the dispatcher right after a commit (no polling delay),
//! and a poll every second picks up anything else (recovered runs, retries from another path).
//! A lease keeper renews the leases of the runs this process is executing; a sweeper re-queues
//! runs whose lease expired, so a run left RUNNING by a dead process is picked up again.
//!
//! Slots are shared fairly: the store hands out queued runs by their rank within their flow
//! ([`crate::store::Store::claim_runs`]), and intake takes at most [`Queue::intake_share`] slots
//! for one flow, so a flood on one flow leaves room for the others. A run whose step waits for a
//! retry longer than [`crate::exec::DEFER_RETRY_AFTER`] gives its slot back: it is stored QUEUED
//! with a not-before time, and a timer here (or the poll, in other processes) claims it again
//! when that time comes.

use crate::exec::{Executor, RunRequest};
use crate::metrics::Metrics;
use crate::registry::FlowRegistry;
use crate::store::{ClaimedRun, DynStore, Lease, RunOutcome, RunStatus};
use crate::wasm::SyncResponse;
use serde_json::json;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinSet;

/// How often a `/sync` waiter checks the store for a run finished by another process.
pub const WAIT_POLL: Duration = Duration::from_millis(100);

/// Queue tunables.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Runs executing at once in this process.
    pub concurrency: usize,
    /// How long a claim is valid without renewal.
    pub lease: Duration,
    /// Fallback poll interval when nobody wakes the dispatcher.
    pub poll_interval: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            concurrency: 64,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Shared queue handle.
pub struct Queue {
    store: DynStore,
    config: QueueConfig,
    /// This process's lease owner id.
    owner: String,
    wake: Notify,
    slot_freed: Notify,
    in_flight: AtomicUsize,
    /// Runs executing that were taken at intake (part of `in_flight`).
    inline: AtomicUsize,
    /// Slots taken at intake and still held, per flow (see [`Queue::intake_share`]).
    intake_by_flow: Mutex<HashMap<String, usize>>,
    /// The runs this process is executing: the only leases it renews.
    executing: Mutex<HashSet<String>>,
    /// When runs this process deferred become due (ms since the epoch), earliest first: the
    /// dispatcher wakes then to claim them.
    due: Mutex<BinaryHeap<Reverse<i64>>>,
    waiters: Mutex<Waiters>,
}

/// How a wait for a run ended.
#[derive(Debug)]
pub enum Waited {
    /// This process finished the run; the `/sync` response its steps set, if any.
    Finished(Option<SyncResponse>),
    /// The run is finished; read it from the store.
    Stored,
    /// The timeout passed first.
    TimedOut,
}

/// Runs finished this recently are remembered for late waiters.
const RECENTLY_FINISHED: usize = 4096;

/// `/sync` callers waiting for runs, and the runs that finished just now.
#[derive(Default)]
struct Waiters {
    waiting: HashMap<String, Vec<oneshot::Sender<Option<SyncResponse>>>>,
    recent: HashSet<String>,
    recent_order: VecDeque<String>,
}

impl Waiters {
    fn remember(&mut self, run_id: &str) {
        if self.recent.insert(run_id.to_string()) {
            self.recent_order.push_back(run_id.to_string());
        }
        while self.recent_order.len() > RECENTLY_FINISHED {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }
}

/// A worker slot taken at intake ([`Queue::try_take_slot`]): handed to the run started with it,
/// or given back when dropped unused.
pub struct Slot {
    queue: Arc<Queue>,
    held: bool,
    /// The flow's part of the intake share, held until the run started with the slot ends.
    share: Option<FlowShare>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.held {
            self.queue.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.queue.slot_freed.notify_one();
        }
    }
}

/// One intake slot counted against a flow's share; given back when dropped.
struct FlowShare {
    queue: Arc<Queue>,
    flow_id: String,
}

impl Drop for FlowShare {
    fn drop(&mut self) {
        let mut counts = self
            .queue
            .intake_by_flow
            .lock()
            .expect("intake shares poisoned");
        if let Some(n) = counts.get_mut(&self.flow_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.flow_id);
            }
        }
    }
}

/// A run executing in this process: counted in `in_flight` and in the leases renewed until
/// dropped, also when its task is aborted (a dispatcher restarted after a panic drops its tasks),
/// so the count of free slots cannot drift.
struct Executing {
    queue: Arc<Queue>,
    run_id: String,
}

impl Executing {
    /// Counts `run_id` as executing; its slot is already counted in `in_flight`.
    fn new(queue: Arc<Queue>, run_id: &str) -> Executing {
        queue
            .executing
            .lock()
            .expect("executing poisoned")
            .insert(run_id.to_string());
        Executing {
            queue,
            run_id: run_id.to_string(),
        }
    }
}

impl Drop for Executing {
    fn drop(&mut self) {
        self.queue
            .executing
            .lock()
            .expect("executing poisoned")
            .remove(&self.run_id);
        self.queue.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.queue.slot_freed.notify_one();
    }
}

/// Aborts a task when dropped: the lease keeper ends with the dispatcher that started it, also
/// when the dispatcher panics and is restarted by its supervisor.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Queue {
    pub fn new(store: DynStore, config: QueueConfig) -> Arc<Queue> {
        Arc::new(Queue {
            store,
            config,
            owner: format!("{}-{}", hostname(), crate::store::new_id()),
            wake: Notify::new(),
            slot_freed: Notify::new(),
            in_flight: AtomicUsize::new(0),
            inline: AtomicUsize::new(0),
            intake_by_flow: Mutex::new(HashMap::new()),
            executing: Mutex::new(HashSet::new()),
            due: Mutex::new(BinaryHeap::new()),
            waiters: Mutex::new(Waiters::default()),
        })
    }

    /// Tells the dispatcher new work was committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs executing in this process right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// How many worker slots intake may hold for one flow at once: half the workers, at least
    /// one. A flood of events (or `/sync` calls) on one flow then leaves slots for the others;
    /// its events past the share are queued and claimed by rank within their flow, so they run
    /// whenever no other flow is waiting.
    pub fn intake_share(&self) -> usize {
        (self.config.concurrency / 2).max(1)
    }

    /// Takes a worker slot for a run of `flow_id` when one is free and the flow holds fewer
    /// than [`Queue::intake_share`] intake slots, so intake can store a new run already started
    /// and run it at once ([`Queue::execute_now`]) instead of queueing it for the dispatcher:
    /// that saves the claim transaction and the wait for the next claim. Atomic, so concurrent
    /// intakes never take more slots than there are; the dispatcher claims only what is left.
    /// The slot goes back when the [`Slot`] is dropped unused (a duplicate, a failed write).
    pub fn try_take_slot(self: &Arc<Self>, flow_id: &str) -> Option<Slot> {
        let mut counts = self.intake_by_flow.lock().expect("intake shares poisoned");
        let held = counts.get(flow_id).copied().unwrap_or(0);
        if held >= self.intake_share() {
            return None;
        }
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.config.concurrency).then_some(n + 1)
            })
            .ok()?;
        counts.insert(flow_id.to_string(), held + 1);
        Some(Slot {
            queue: self.clone(),
            held: true,
            share: Some(FlowShare {
                queue: self.clone(),
                flow_id: flow_id.to_string(),
            }),
        })
    }

    /// Waits until `run_id` reaches a terminal status or `timeout` passes.
    ///
    /// A run executed by this process wakes the waiter directly, handing over the `/sync`
    /// response its steps set, so the common case needs no database read at all. Races are
    /// closed in memory: registration and the "recently finished" check share one lock with
    /// [`Queue::notify_finished`]. When `elsewhere` is set (a duplicate event whose run may have
    /// finished long ago, or a database other processes also work on) the store is checked first
    /// and then every [`WAIT_POLL`].
    pub async fn wait_for(&self, run_id: &str, timeout: Duration, elsewhere: bool) -> Waited {
        let (tx, mut rx) = oneshot::channel();
        {
            let mut state = self.waiters.lock().expect("waiters poisoned");
            if state.recent.contains(run_id) {
                return Waited::Stored;
            }
            state
                .waiting
                .entry(run_id.to_string())
                .or_default()
                .push(tx);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let waited = loop {
            if elsewhere
                && let Ok(Some(run)) = self.store.get_run(run_id).await
                && run.summary.status.is_terminal()
            {
                break Waited::Stored;
            }
            let wake_up = if elsewhere {
                (tokio::time::Instant::now() + WAIT_POLL).min(deadline)
            } else {
                deadline
            };
            tokio::select! {
                woken = &mut rx => break match woken {
                    Ok(response) => Waited::Finished(response),
                    Err(_) => Waited::Stored,
                },
                _ = tokio::time::sleep_until(wake_up) => {
                    if wake_up == deadline {
                        break Waited::TimedOut;
                    }
                }
            }
        };
        if !matches!(waited, Waited::Finished(_)) {
            // Only this waiter goes: a duplicate delivery may still be waiting on the same run.
            drop(rx);
            let mut state = self.waiters.lock().expect("waiters poisoned");
            if let Some(senders) = state.waiting.get_mut(run_id) {
                senders.retain(|tx| !tx.is_closed());
                if senders.is_empty() {
                    state.waiting.remove(run_id);
                }
            }
        }
        waited
    }

    /// Wakes the waiters of a run this process just finished, and remembers it briefly for a
    /// waiter that registers a moment too late.
    fn notify_finished(&self, run_id: &str, response: Option<SyncResponse>) {
        let senders = {
            let mut state = self.waiters.lock().expect("waiters poisoned");
            state.remember(run_id);
            state.waiting.remove(run_id)
        };
        for tx in senders.into_iter().flatten() {
            let _ = tx.send(response.clone());
        }
    }

    /// Runs the dispatcher, lease keeper and sweeper until `shutdown` turns true, then waits up to
    /// `grace` for in-flight runs and hands the rest back to the queue.
    pub async fn run(
        self: Arc<Self>,
        executor: Arc<Executor>,
        flows: Arc<FlowRegistry>,
        metrics: Arc<Metrics>,
        mut shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) {
        let keeper = AbortOnDrop(tokio::spawn(self.clone().keep_leases(shutdown.clone())));
        let mut tasks = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.dispatch(&mut tasks, &executor, &flows, &metrics).await;
            while tasks.try_join_next().is_some() {}
            let next_due = self.next_due();
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = self.slot_freed.notified() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = tokio::time::sleep_until(next_due) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!(
            in_flight = self.in_flight(),
            "queue stopping; waiting for in-flight runs"
        );
        // Runs taken at intake (`/sync`) are not in `tasks`; they are counted in `inline`.
        let drained = tokio::time::timeout(grace, async {
            while tasks.join_next().await.is_some() {}
            while self.inline.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            match self.store.release_leases(&self.owner).await {
                Ok(n) => tracing::warn!(
                    requeued = n,
                    "grace period over; unfinished runs handed back to the queue"
                ),
                Err(error) => {
                    tracing::error!(%error, "could not hand unfinished runs back; their leases will expire")
                }
            }
        }
        drop(keeper);
    }

    /// When the dispatcher must look again for runs deferred here: the earliest not-before time
    /// still ahead (times already passed are dropped, the claim that follows takes those runs),
    /// or a day from now when there is none.
    fn next_due(&self) -> tokio::time::Instant {
        let now_ms = crate::store::epoch_ms();
        let mut due = self.due.lock().expect("due times poisoned");
        while due.peek().is_some_and(|Reverse(at)| *at <= now_ms) {
            due.pop();
        }
        let wait = due
            .peek()
            .map_or(Duration::from_secs(86_400), |Reverse(at)| {
                // A few ms late rather than early: a claim a moment early finds nothing due.
                Duration::from_millis((at - now_ms) as u64 + 5)
            });
        tokio::time::Instant::now() + wait
    }

    /// Claims as many runs as there are free slots and starts them.
    async fn dispatch(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        executor: &Arc<Executor>,
        flows: &Arc<FlowRegistry>,
        metrics: &Arc<Metrics>,
    ) {
        loop {
            let free = self.config.concurrency.saturating_sub(self.in_flight());
            if free == 0 {
                return;
            }
            let lease_ms = self.config.lease.as_millis() as i64;
            let claimed = match self
                .store
                .claim_runs(&self.owner, free.min(256) as u32, lease_ms)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, "claiming runs failed");
                    return;
                }
            };
            if claimed.is_empty() {
                return;
            }
            for run in claimed {
                self.in_flight.fetch_add(1, Ordering::AcqRel);
                let executing = Executing::new(self.clone(), &run.id);
                tasks.spawn(self.clone().execute(
                    executor.clone(),
                    flows.clone(),
                    metrics.clone(),
                    run,
                    executing,
                ));
            }
        }
    }

    /// The lease a run taken at intake by this process is stored under (see
    /// [`crate::store::NewEvent::lease`]).
    pub fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            lease_ms: self.config.lease.as_millis() as i64,
        }
    }

    /// Executes a run this process took at intake right away, on its own task so that a caller
    /// who hangs up does not cut the run short. Waiters hear of it as of any other run. It takes
    /// a worker slot like a claimed run (the dispatcher claims fewer while it runs).
    ///
    /// Returns what the run's waiter hears when it finishes: the `/sync` response its steps set.
    /// The waiter is registered before the run starts, so the answer cannot be missed.
    pub fn execute_now(
        self: &Arc<Self>,
        mut slot: Slot,
        executor: Arc<Executor>,
        flows: Arc<FlowRegistry>,
        metrics: Arc<Metrics>,
        run: ClaimedRun,
    ) -> oneshot::Receiver<Option<SyncResponse>> {
        // The run now owns the slot; `execute` gives it back when the run ends, and the flow's
        // intake share when the task is done with it.
        slot.held = false;
        let share = slot.share.take();
        let executing = Executing::new(self.clone(), &run.id);
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .expect("waiters poisoned")
            .waiting
            .entry(run.id.clone())
            .or_default()
            .push(tx);
        self.inline.fetch_add(1, Ordering::Relaxed);
        let queue = self.clone();
        tokio::spawn(async move {
            queue
                .clone()
                .execute(executor, flows, metrics, run, executing)
                .await;
            drop(share);
            queue.inline.fetch_sub(1, Ordering::Relaxed);
        });
        rx
    }

    /// Executes one claimed run, records its outcome and wakes its waiters; or, when a step
    /// waits for a retry, hands the run back to the queue until then. `executing` holds the
    /// run's slot until this returns.
    async fn execute(
        self: Arc<Self>,
        executor: Arc<Executor>,
        flows: Arc<FlowRegistry>,
        metrics: Arc<Metrics>,
        run: ClaimedRun,
        executing: Executing,
    ) {
        let run_id = run.id.clone();
        let flow_id = run.flow_id.clone();
        let (outcome, retry_at) = execute_claimed(&executor, &flows, run, &self.owner).await;
        if let Some(at) = retry_at {
            // The slot goes back now, not after the backoff; the waiters keep waiting.
            match self.store.defer_run(outcome, at).await {
                Ok(true) => {
                    tracing::debug!(%run_id, %flow_id, retry_at = at, "run waits in the queue for a step's retry");
                    self.due
                        .lock()
                        .expect("due times poisoned")
                        .push(Reverse(at));
                    self.wake();
                }
                Ok(false) => {
                    tracing::warn!(%run_id, "run deferred after its lease was lost; dropped")
                }
                Err(error) => {
                    tracing::error!(%run_id, %error, "deferring a run's retry failed; its lease will expire")
                }
            }
            drop(executing);
            return;
        }
        let status = outcome.status;
        let took = Duration::from_secs_f64(outcome.duration_ms.max(0.0) / 1000.0);
        let response = crate::exec::sync_response(&outcome.steps);
        if status != RunStatus::Succeeded {
            // One line per run that did not succeed: which flow, which run, why.
            tracing::warn!(
                %run_id,
                %flow_id,
                status = %status,
                error = outcome.error.as_deref().unwrap_or(""),
                "run did not succeed"
            );
        }
        match self.store.finish_run(outcome).await {
            Ok(true) => metrics.run_finished(status, took),
            Ok(false) => {
                tracing::warn!(%run_id, "run finished after its lease was lost; result dropped")
            }
            Err(error) => tracing::error!(%run_id, %error, "recording run result failed"),
        }
        self.notify_finished(&run_id, response);
        drop(executing);
    }

    /// Renews this process's leases and re-queues expired ones from dead processes.
    async fn keep_leases(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let every = self.config.lease / 3;
        let lease_ms = self.config.lease.as_millis() as i64;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
            let executing: Vec<String> = self
                .executing
                .lock()
                .expect("executing poisoned")
                .iter()
                .cloned()
                .collect();
            if !executing.is_empty()
                && let Err(error) = self
                    .store
                    .renew_leases(&self.owner, &executing, lease_ms)
                    .await
            {
                tracing::error!(%error, "renewing leases failed");
            }
            match self.store.requeue_expired().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(requeued = n, "re-queued runs whose lease expired");
                    self.wake();
                }
                Err(error) => tracing::error!(%error, "re-queueing expired runs failed"),
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// Loads the flow version a run was queued with and executes it. With the outcome comes the
/// time to resume the run at when a step waits for a retry ([`crate::exec::RunResult::retry_at_ms`]).
async fn execute_claimed(
    executor: &Executor,
    flows: &FlowRegistry,
    run: ClaimedRun,
    owner: &str,
) -> (RunOutcome, Option<i64>) {
    let fail = |message: String| {
        let outcome = RunOutcome {
            run_id: run.id.clone(),
            owner: owner.to_string(),
            status: RunStatus::Failed,
            error: Some(message),
            duration_ms: 0.0,
            steps: Vec::new(),
        };
        (outcome, None)
    };
    let flow = match flows.version(&run.flow_id, run.flow_version).await {
        Ok(Some(flow)) => flow,
        Ok(None) => {
            return fail(format!(
                "flow {} version {} no longer exists",
                run.flow_id, run.flow_version
            ));
        }
        Err(error) => return fail(format!("loading flow {} failed: {error}", run.flow_id)),
    };
    let body: serde_json::Value = match serde_json::from_str(&run.event_body) {
        Ok(body) => body,
        Err(error) => return fail(format!("stored event is not JSON: {error}")),
    };
    let request = RunRequest {
        run_id: &run.id,
        scope: &run.scope,
        flow_id: &run.flow_id,
        flow: &flow,
        trigger: json!({ "body": body, "headers": run.event_headers }),
        environment: run.environment,
        attempt: run.attempt.max(1) as u32,
        prior_steps: run.prior_steps.clone(),
        live: false,
        clock_ms: None,
        windows: None,
        // Runs from intake (`/sync` included) and claims alike: a `/sync` caller keeps waiting
        // for a deferred run (its waiter stays registered), but does not keep a slot asleep.
        defer_retries: true,
    };
    let result = executor.execute(&request).await;
    let retry_at = result.retry_at_ms();
    let outcome = RunOutcome {
        run_id: run.id.clone(),
        owner: owner.to_string(),
        status: result.status,
        error: result.error,
        duration_ms: result.duration_ms,
        steps: result.steps,
    };
    (outcome, retry_at)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "hookflow".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DatabaseUrl, OpenOptions, open};

    async fn queue(concurrency: usize) -> (Arc<Queue>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = DatabaseUrl::Sqlite(dir.path().join("q.db"));
        let store = open(&url, &OpenOptions::default())
            .await
            .expect("open store")
            .store;
        let config = QueueConfig {
            concurrency,
            ..QueueConfig::default()
        };
        (Queue::new(store, config), dir)
    }

    /// One flow takes at most half the slots at intake (at least one); the rest stay for the
    /// others, and a slot given back counts for its flow again.
    #[tokio::test]
    async fn intake_leaves_slots_for_other_flows() {
        let (q, _dir) = queue(4).await;
        assert_eq!(q.intake_share(), 2);
        let a1 = q.try_take_slot("a").expect("first of a");
        let a2 = q.try_take_slot("a").expect("second of a");
        assert!(q.try_take_slot("a").is_none(), "a has its share");
        let b1 = q.try_take_slot("b").expect("b still fits");
        let b2 = q.try_take_slot("b").expect("b's second");
        assert!(q.try_take_slot("c").is_none(), "every slot is taken");
        assert_eq!(q.in_flight(), 4);
        drop(a1);
        assert_eq!(q.in_flight(), 3);
        let a3 = q.try_take_slot("a").expect("a's slot came back");
        drop((a2, a3, b1, b2));
        assert_eq!(q.in_flight(), 0);
        assert!(q.intake_by_flow.lock().unwrap().is_empty());

        let (single, _dir) = queue(1).await;
        assert_eq!(single.intake_share(), 1, "at least one");
        assert!(single.try_take_slot("a").is_some());
    }

    /// A run counted as executing gives its slot back and leaves the renewed set when its task
    /// ends, also when the task is aborted rather than finishing.
    #[tokio::test]
    async fn an_aborted_run_gives_its_slot_back() {
        let (q, _dir) = queue(2).await;
        q.in_flight.fetch_add(1, Ordering::AcqRel);
        let executing = Executing::new(q.clone(), "r1");
        assert!(q.executing.lock().unwrap().contains("r1"));
        let task = tokio::spawn(async move {
            let _executing = executing;
            std::future::pending::<()>().await;
        });
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(q.in_flight(), 0);
        assert!(q.executing.lock().unwrap().is_empty());
    }

    /// Deferred runs wake the dispatcher at their time; times already passed are dropped.
    #[tokio::test]
    async fn the_dispatcher_wakes_when_a_deferred_run_is_due() {
        let (q, _dir) = queue(1).await;
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        assert!(q.next_due() > far, "nothing deferred: no early wake-up");
        let now = crate::store::epoch_ms();
        q.due.lock().unwrap().push(Reverse(now - 10));
        q.due.lock().unwrap().push(Reverse(now + 2_000));
        let wake = q.next_due();
        let ahead = wake - tokio::time::Instant::now();
        assert!(
            ahead > Duration::from_millis(1_500) && ahead < Duration::from_millis(2_100),
            "{ahead:?}"
        );
        assert_eq!(q.due.lock().unwrap().len(), 1, "the passed time is dropped");
    }
}
