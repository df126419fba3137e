//! What plugins make the host hold for them (`wasi:http` header maps, requests, bodies, streams,
//! pollables: the entries of a step's resource table), limited per step and across the process.
//!
//! Linear memory is limited per step by the store's limiter; host objects are not part of it, so
//! without this a plugin could grow the server through them, and `workers` steps hoarding at once
//! would hold `workers` times what one may. Each step therefore keeps an account
//! ([`HostMemory`]) that reserves bytes from one process-wide [`HostMemoryPool`] before its
//! objects can grow into them. A step over its own limit, or whose reservation the pool refuses,
//! is stopped: from then on its host calls see an empty table (and trap), and the sandbox reports
//! "host memory budget exceeded".
//!
//! The account is kept without a hook on every table insertion (wasmtime has none): every host
//! call that can reach the table passes through the `WasiView`/`WasiHttpView` getters, one call
//! adds at most [`MAX_CALL_BYTES`], so the account walks the table (O(entries)) only once the
//! calls since the last walk could have used up what it reserved ahead. Each entry is charged a
//! flat [`ENTRY_BYTES`] — the most one can hold: a header map is capped at that size and an
//! outgoing body buffers at most one chunk of it (`http::BODY_CHUNK_BYTES`) — plus the strings
//! of an outgoing request, the one entry that can hold more.
//!
//! Linear memory is limited per step by the store's limiter, and across the process by
//! admission ([`LiveMemory`]): a step starts only while the linear memory of the steps alive is
//! under a budget, so `workers` instances growing at once cannot add up to `workers` times a
//! step's limit. A step that waits keeps its worker slot; with no step alive one always starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;
use wasmtime::component::ResourceTable;
use wasmtime_wasi_http::p2::types::HostOutgoingRequest;

/// Bytes charged for every entry of a step's resource table.
pub const ENTRY_BYTES: usize = 16 << 10;
/// The most one host call can add: a few entries (a body and its stream, a response and its
/// headers) or one request path or authority (`http::Uri` caps each below 64 KiB).
const MAX_CALL_BYTES: usize = 4 * ENTRY_BYTES + (64 << 10);
/// The least a step reserves ahead of what it holds: room for two calls between walks.
const MIN_AHEAD: usize = 2 * MAX_CALL_BYTES;

/// The bytes all steps of the process may make the host hold at once.
pub struct HostMemoryPool {
    limit: usize,
    reserved: AtomicUsize,
}

impl HostMemoryPool {
    pub fn new(limit: usize) -> Arc<HostMemoryPool> {
        Arc::new(HostMemoryPool {
            limit,
            reserved: AtomicUsize::new(0),
        })
    }

    /// Reserves `bytes` more, or nothing when that would pass the limit.
    fn try_reserve(&self, bytes: usize) -> bool {
        let before = self.reserved.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > self.limit {
            self.reserved.fetch_sub(bytes, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn release(&self, bytes: usize) {
        self.reserved.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes reserved by running steps now.
    #[cfg(test)]
    fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Acquire)
    }
}

/// Why a step was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetExceeded {
    pub message: String,
    /// The process-wide pool was full (other steps held it): a later attempt may fit.
    pub retryable: bool,
}

/// One step's account with the pool; gives its reservation back when dropped with the store.
pub struct HostMemory {
    pool: Arc<HostMemoryPool>,
    step_limit: usize,
    reserved: usize,
    /// Bytes the calls since the last walk may have added, at most.
    spent: usize,
    /// What the last walk left reserved beyond what the step held.
    ahead: usize,
    exceeded: Option<BudgetExceeded>,
    /// Handed to host calls once the step is over budget: holds nothing and accepts nothing.
    refused: ResourceTable,
}

impl HostMemory {
    pub fn new(pool: Arc<HostMemoryPool>, step_limit: usize) -> HostMemory {
        let mut refused = ResourceTable::new();
        refused.set_max_capacity(0);
        HostMemory {
            pool,
            step_limit,
            reserved: 0,
            spent: 0,
            ahead: 0,
            exceeded: None,
            refused,
        }
    }

    /// The table a host call may use: the step's own while it is within budget, an empty one
    /// (every handle unknown, no room) once it is not, so the call traps.
    pub fn table_for_call<'a>(&'a mut self, table: &'a mut ResourceTable) -> &'a mut ResourceTable {
        if self.exceeded.is_none() {
            self.spent += MAX_CALL_BYTES;
            if self.spent > self.ahead {
                self.settle(table);
            }
        }
        if self.exceeded.is_some() {
            &mut self.refused
        } else {
            table
        }
    }

    /// Why the step was stopped, once it was.
    pub fn exceeded(&self) -> Option<&BudgetExceeded> {
        self.exceeded.as_ref()
    }

    /// Walks the table and sets the reservation to what it holds plus room for the next calls.
    fn settle(&mut self, table: &mut ResourceTable) {
        let held = held_bytes(table);
        if held > self.step_limit {
            self.exceeded = Some(BudgetExceeded {
                message: format!(
                    "host memory budget exceeded: the step holds {} in host objects (wasi:http header maps, requests, bodies, streams), over its limit of {}",
                    super::human_bytes(held),
                    super::human_bytes(self.step_limit)
                ),
                retryable: false,
            });
            return;
        }
        let wanted = held + (held / 4).max(MIN_AHEAD);
        if wanted > self.reserved {
            if !self.pool.try_reserve(wanted - self.reserved) {
                self.exceeded = Some(BudgetExceeded {
                    message: format!(
                        "host memory budget exceeded: the {} the server keeps for plugins' host objects is in use by running steps (this step holds {})",
                        super::human_bytes(self.pool.limit),
                        super::human_bytes(held)
                    ),
                    retryable: true,
                });
                return;
            }
        } else {
            self.pool.release(self.reserved - wanted);
        }
        self.reserved = wanted;
        self.ahead = wanted - held;
        self.spent = 0;
    }
}

impl Drop for HostMemory {
    fn drop(&mut self) {
        self.pool.release(self.reserved);
    }
}

/// The linear memory of the steps alive, and the gate new steps wait at.
pub struct LiveMemory {
    bytes: AtomicUsize,
    budget: usize,
    released: Notify,
}

/// Charged to a step when it is admitted, before its instance exists, so that steps admitted
/// together count before they grow: about what a small plugin's instance starts with.
const ADMISSION_BYTES: usize = 1 << 20;

impl LiveMemory {
    pub fn new(budget: usize) -> Arc<LiveMemory> {
        Arc::new(LiveMemory {
            bytes: AtomicUsize::new(0),
            budget,
            released: Notify::new(),
        })
    }

    /// Waits until the steps alive hold less than the budget, then admits one.
    pub async fn admit(self: &Arc<Self>) -> Admission {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let admitted = self
                .bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    (held < self.budget).then_some(held + ADMISSION_BYTES)
                })
                .is_ok();
            if admitted {
                return Admission {
                    live: self.clone(),
                    charged: ADMISSION_BYTES,
                    grown: 0,
                };
            }
            released.await;
        }
    }
}

/// One admitted step's share of [`LiveMemory`]: what its memories grew to, at least what it was
/// charged at admission. Given back when the store is dropped.
pub struct Admission {
    live: Arc<LiveMemory>,
    charged: usize,
    grown: usize,
}

impl Admission {
    /// A memory of the step grew by `bytes`.
    pub fn grew(&mut self, bytes: usize) {
        self.grown += bytes;
        if self.grown > self.charged {
            self.live
                .bytes
                .fetch_add(self.grown - self.charged, Ordering::AcqRel);
            self.charged = self.grown;
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.live.bytes.fetch_sub(self.charged, Ordering::AcqRel);
        self.live.released.notify_waiters();
    }
}

/// What a step's table holds, by the charge of [`ENTRY_BYTES`] per entry plus request strings.
fn held_bytes(table: &mut ResourceTable) -> usize {
    table
        .iter_mut()
        .map(|entry| {
            ENTRY_BYTES
                + entry
                    .downcast_ref::<HostOutgoingRequest>()
                    .map_or(0, |request| {
                        request.path_with_query.as_ref().map_or(0, String::len)
                            + request.authority.as_ref().map_or(0, String::len)
                    })
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(table: &mut ResourceTable, entries: usize) {
        for _ in 0..entries {
            table.push(()).unwrap();
        }
    }

    #[test]
    fn a_step_reserves_ahead_of_what_it_holds_and_gives_it_back() {
        let pool = HostMemoryPool::new(64 << 20);
        let mut table = ResourceTable::new();
        let mut step = HostMemory::new(pool.clone(), 16 << 20);
        step.table_for_call(&mut table);
        assert_eq!(
            pool.reserved(),
            MIN_AHEAD,
            "nothing held yet, room for two calls"
        );
        fill(&mut table, 100);
        for _ in 0..3 {
            step.table_for_call(&mut table);
        }
        let held = 100 * ENTRY_BYTES;
        assert_eq!(pool.reserved(), held + (held / 4).max(MIN_AHEAD));
        assert!(step.exceeded().is_none());
        drop(step);
        assert_eq!(pool.reserved(), 0);
    }

    #[test]
    fn a_step_over_its_own_limit_is_refused_its_table() {
        let pool = HostMemoryPool::new(64 << 20);
        let mut table = ResourceTable::new();
        let mut step = HostMemory::new(pool.clone(), 1 << 20);
        fill(&mut table, (1 << 20) / ENTRY_BYTES + 1);
        let given = step.table_for_call(&mut table);
        assert!(given.push(()).is_err(), "the refused table takes nothing");
        let exceeded = step.exceeded().expect("over the step limit").clone();
        assert!(exceeded.message.contains("host memory budget exceeded"));
        assert!(
            exceeded.message.contains("over its limit of 1 MiB"),
            "{exceeded:?}"
        );
        assert!(!exceeded.retryable);
        drop(step);
        assert_eq!(pool.reserved(), 0);
    }

    /// Regression (issue 18, "host-memory plugins"): steps were limited one by one only, so
    /// `workers` hoarding steps held `workers` times the step limit. The pool refuses the step
    /// that would take it past the process budget, and takes later steps again once the hoarders
    /// are gone.
    #[test]
    fn steps_together_stay_within_the_process_budget() {
        let pool = HostMemoryPool::new(8 << 20);
        let per_step = 3 << 20;
        let mut steps: Vec<(HostMemory, ResourceTable)> = (0..4)
            .map(|_| {
                (
                    HostMemory::new(pool.clone(), 16 << 20),
                    ResourceTable::new(),
                )
            })
            .collect();
        let mut refused = 0;
        for (step, table) in &mut steps {
            fill(table, per_step / ENTRY_BYTES);
            step.table_for_call(table);
            if let Some(exceeded) = step.exceeded() {
                assert!(
                    exceeded.message.contains("in use by running steps"),
                    "{exceeded:?}"
                );
                assert!(exceeded.retryable);
                refused += 1;
            }
            assert!(pool.reserved() <= 8 << 20);
        }
        assert_eq!(
            refused, 2,
            "two steps of 3 MiB (plus what they reserve ahead) fit in 8 MiB"
        );
        steps.clear();
        assert_eq!(pool.reserved(), 0);
        let mut table = ResourceTable::new();
        let mut step = HostMemory::new(pool.clone(), 16 << 20);
        fill(&mut table, per_step / ENTRY_BYTES);
        step.table_for_call(&mut table);
        assert!(step.exceeded().is_none());
    }

    /// Regression (issue 18, `bench/attack.py` "host-memory plugins": 531 MiB with JavaScript
    /// steps alive in every worker): steps start only while those alive hold less linear memory
    /// than the budget, and the next starts when one ends.
    #[tokio::test]
    async fn steps_start_while_live_linear_memory_is_under_the_budget() {
        let live = LiveMemory::new(4 << 20);
        let mut first = live.admit().await;
        first.grew(3 << 20);
        assert_eq!(live.bytes.load(Ordering::Acquire), 3 << 20);
        let second = live.admit().await;
        assert_eq!(
            live.bytes.load(Ordering::Acquire),
            4 << 20,
            "charged on admission"
        );
        let mut third = std::pin::pin!(live.admit());
        assert!(
            futures::poll!(third.as_mut()).is_pending(),
            "4 MiB alive: the third waits"
        );
        drop(first);
        let third = third.await;
        assert_eq!(live.bytes.load(Ordering::Acquire), 2 << 20);
        drop((second, third));
        assert_eq!(live.bytes.load(Ordering::Acquire), 0);
    }

    #[test]
    fn request_strings_are_charged_on_top_of_the_entry() {
        let mut table = ResourceTable::new();
        table
            .push(HostOutgoingRequest {
                method: wasmtime_wasi_http::p2::bindings::http::types::Method::Get,
                scheme: None,
                authority: Some("a".repeat(1000)),
                path_with_query: Some("/".repeat(3000)),
                headers: Default::default(),
                body: None,
            })
            .unwrap();
        assert_eq!(held_bytes(&mut table), ENTRY_BYTES + 4000);
    }
}
