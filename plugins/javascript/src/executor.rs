//! The job queue that drives promises, `fetch` and timers for one step.
//!
//! Boa's own `SimpleJobExecutor` spins while it waits for a timer and runs until every queue is
//! empty. A step needs two things it does not offer: waiting for a timer must sleep (a blocking
//! WASI clock wait, so the host's CPU is not burnt while a script does
//! `await new Promise(r => setTimeout(r, 1000))`), and the step must end once the handler's
//! promise settles, without waiting for timers the script left behind (an Auth0 Action also ends
//! when its handler resolves). Everything here runs on the component's single thread.

use boa_engine::job::{
    GenericJob, IntervalJob, Job, JobExecutor, NativeAsyncJob, PromiseJob, TimeoutJob,
};
use boa_engine::{Context, JsResult, JsValue};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};

/// A scheduled timer job.
#[derive(Debug)]
enum ClockJob {
    Timeout(TimeoutJob),
    Interval(IntervalJob),
}

impl ClockJob {
    fn cancelled(&self) -> bool {
        match self {
            ClockJob::Timeout(t) => t.cancelled(),
            ClockJob::Interval(i) => i.cancelled(),
        }
    }
}

/// How a run of the queue ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The caller's condition became true and no queued work was left to run.
    Done,
    /// Nothing can run any more and the condition is still false: no queued job, no timer, and
    /// every pending native future waits for something that will never happen.
    Stalled,
}

/// FIFO job queues plus a timer wheel keyed by due instant.
#[derive(Debug, Default)]
pub struct Executor {
    promise_jobs: RefCell<VecDeque<PromiseJob>>,
    async_jobs: RefCell<VecDeque<NativeAsyncJob>>,
    generic_jobs: RefCell<VecDeque<GenericJob>>,
    clock_jobs: RefCell<BTreeMap<boa_engine::context::time::JsInstant, Vec<ClockJob>>>,
}

type BoxedJob<'a> = Pin<Box<dyn Future<Output = JsResult<JsValue>> + 'a>>;

impl Executor {
    fn has_ready_work(&self) -> bool {
        !self.promise_jobs.borrow().is_empty()
            || !self.async_jobs.borrow().is_empty()
            || !self.generic_jobs.borrow().is_empty()
    }

    /// Runs jobs until `done()` holds and no promise, generic or native job is left (so work a
    /// settled handler started, such as an un-awaited `fetch`, still finishes), sleeping for
    /// timers while `done()` is false. Timers still pending once `done()` holds are dropped.
    /// The first error a job returns (an exception thrown by a timer callback) ends the run.
    pub fn run_until(&self, context: &mut Context, done: &dyn Fn() -> bool) -> JsResult<Outcome> {
        let cell = RefCell::new(context);
        let mut pending: Vec<BoxedJob<'_>> = Vec::new();
        let mut task_cx = TaskContext::from_waker(Waker::noop());
        loop {
            let finished = done();

            for job in mem::take(&mut *self.async_jobs.borrow_mut()) {
                pending.push(Box::pin(job.call(&cell)));
            }

            if !finished {
                self.run_due_timers(&cell)?;
            }

            let jobs = mem::take(&mut *self.promise_jobs.borrow_mut());
            for job in jobs {
                job.call(&mut cell.borrow_mut())?;
            }
            let jobs = mem::take(&mut *self.generic_jobs.borrow_mut());
            for job in jobs {
                job.call(&mut cell.borrow_mut())?;
            }

            let mut progressed = false;
            let mut i = 0;
            while i < pending.len() {
                match pending[i].as_mut().poll(&mut task_cx) {
                    Poll::Ready(result) => {
                        drop(pending.swap_remove(i));
                        result?;
                        progressed = true;
                    }
                    Poll::Pending => i += 1,
                }
            }

            if progressed || self.has_ready_work() {
                cell.borrow_mut().clear_kept_objects();
                continue;
            }
            if finished {
                return Ok(Outcome::Done);
            }
            if done() {
                // The last round settled the caller's promise; one more round drains the rest.
                continue;
            }
            match self.next_timer() {
                Some(due) => {
                    let now = cell.borrow().clock().now();
                    if due > now {
                        std::thread::sleep((due - now).into());
                    }
                }
                None => return Ok(Outcome::Stalled),
            }
        }
    }

    /// The earliest due instant of a live timer, dropping cancelled ones.
    fn next_timer(&self) -> Option<boa_engine::context::time::JsInstant> {
        let mut clock_jobs = self.clock_jobs.borrow_mut();
        clock_jobs.retain(|_, jobs| {
            jobs.retain(|job| !job.cancelled());
            !jobs.is_empty()
        });
        clock_jobs.keys().next().copied()
    }

    fn run_due_timers(&self, cell: &RefCell<&mut Context>) -> JsResult<()> {
        let now = cell.borrow().clock().now();
        let due = {
            let mut clock_jobs = self.clock_jobs.borrow_mut();
            let later = clock_jobs.split_off(&now);
            mem::replace(&mut *clock_jobs, later)
        };
        for job in due.into_values().flatten() {
            if job.cancelled() {
                continue;
            }
            match job {
                ClockJob::Timeout(job) => {
                    job.call(&mut cell.borrow_mut())?;
                }
                ClockJob::Interval(job) => {
                    let context = &mut cell.borrow_mut();
                    job.call(context)?;
                    let next = context.clock().now() + job.interval();
                    self.clock_jobs
                        .borrow_mut()
                        .entry(next)
                        .or_default()
                        .push(ClockJob::Interval(job));
                }
            }
        }
        Ok(())
    }
}

impl JobExecutor for Executor {
    fn enqueue_job(self: Rc<Self>, job: Job, context: &mut Context) {
        match job {
            Job::PromiseJob(job) => self.promise_jobs.borrow_mut().push_back(job),
            Job::AsyncJob(job) => self.async_jobs.borrow_mut().push_back(job),
            Job::GenericJob(job) => self.generic_jobs.borrow_mut().push_back(job),
            Job::TimeoutJob(job) => {
                let due = context.clock().now() + job.timeout();
                self.clock_jobs
                    .borrow_mut()
                    .entry(due)
                    .or_default()
                    .push(ClockJob::Timeout(job));
            }
            Job::IntervalJob(job) => {
                let due = context.clock().now() + job.interval();
                self.clock_jobs
                    .borrow_mut()
                    .entry(due)
                    .or_default()
                    .push(ClockJob::Interval(job));
            }
            // `FinalizationRegistry` cleanups wait for the collector, which a step never needs
            // (the spec lets hosts skip them), and any other job kind is one this runtime never
            // creates. Dropping them keeps "nothing left to run" detectable.
            _ => {}
        }
    }

    fn run_jobs(self: Rc<Self>, context: &mut Context) -> JsResult<()> {
        self.run_until(context, &|| false).map(|_| ())
    }
}
