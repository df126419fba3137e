//! [`Store`] implemented once, over any [`Backend`]: each call becomes a [`Job`](super::sql::Job)
//! the backend runs in one transaction (writes) or on one connection (reads); hot-path writes go
//! through the group commit ([`super::batch`]).

use super::audit::AuditDraft;
#[cfg(test)]
use super::sql::job;
use super::sql::{AnyBackend, Backend, Job, read, write};
use super::*;
use tokio::sync::{mpsc, oneshot};

/// The one storage interface: business logic written once, run by whichever backend
/// [`open`](super::open) chose. Hot-path writes (`accept_event`, `finish_run`, `claim_runs`) are
/// group-committed ([`batch`]); callers just await their own result.
pub struct Store {
    backend: Arc<dyn AnyBackend>,
    ops: mpsc::Sender<batch::Op>,
}

impl Store {
    /// Wraps `backend` and starts its group-commit tasks (needs a Tokio runtime).
    pub fn new<B: Backend>(backend: Arc<B>) -> Store {
        let backend: Arc<dyn AnyBackend> = backend;
        let ops = batch::spawn(backend.clone());
        Store { backend, ops }
    }

    pub(super) async fn write<T: Send + 'static>(&self, job: Job<T>) -> StoreResult<T> {
        write(&*self.backend, job).await
    }

    pub(super) async fn read<T: Send + 'static>(&self, job: Job<T>) -> StoreResult<T> {
        read(&*self.backend, job).await
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> batch::Op,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(make(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl Store {
    /// The one storage interface. Hot-path writes (`accept_event`, `finish_run`) are batched by the
    /// backend into group commits; callers just await their own result.
    /// The default platform and project, created on first start.
    pub async fn default_scope(&self) -> StoreResult<Scope> {
        Ok(Scope {
            platform_id: "default".into(),
            project_id: "default".into(),
        })
    }

    /// Ok when the store can serve reads and writes; otherwise why not (its writer died, the
    /// database is unreachable). `/healthz` answers with this.
    pub async fn health(&self) -> StoreResult<()> {
        self.backend.health().await
    }

    /// Saves a new flow at version 1.
    pub async fn create_flow(
        &self,
        actor: &Actor,
        scope: &Scope,
        name: &str,
        definition: &Value,
    ) -> StoreResult<FlowRecord> {
        self.create_flow_as(actor, scope, &super::new_id(), name, definition)
            .await
    }

    /// Saves a new version of an existing flow.
    pub async fn update_flow(
        &self,
        actor: &Actor,
        id: &str,
        name: &str,
        definition: &Value,
    ) -> StoreResult<FlowRecord> {
        on!(
            self.write,
            [actor, id, name, definition],
            |c| flows::update(c, &actor, &id, &name, &definition)
        )
    }

    /// Soft-deletes a flow; its runs stay queryable. Returns false when there was no such flow.
    pub async fn delete_flow(&self, actor: &Actor, id: &str) -> StoreResult<bool> {
        on!(self.write, [actor, id], |c| flows::delete(c, &actor, &id))
    }

    /// The current version of a flow.
    pub async fn get_flow(&self, id: &str) -> StoreResult<Option<FlowRecord>> {
        on!(self.read, [id], |c| flows::get(c, &id))
    }

    /// A specific version of a flow (also of a deleted flow, for runs that are still queued).
    pub async fn get_flow_version(
        &self,
        id: &str,
        version: i64,
    ) -> StoreResult<Option<FlowRecord>> {
        on!(self.read, [id], |c| flows::get_version(c, &id, version))
    }

    /// Flows, newest first.
    /// `(version, created)` of every version of a flow, newest first.
    pub async fn flow_versions(&self, id: &str) -> StoreResult<Vec<(i64, String)>> {
        on!(self.read, [id], |c| flows::versions(c, &id))
    }

    /// Flows, newest first; `only` limits them to those projects.
    pub async fn list_flows(
        &self,
        limit: u32,
        cursor: Option<Cursor>,
        only: Option<Vec<String>>,
    ) -> StoreResult<Page<FlowRecord>> {
        on!(self.read, [], |c| flows::list(
            c,
            limit,
            cursor.as_ref(),
            only.as_deref()
        ))
    }

    /// Durably records an event and queues its run, or finds the run of an earlier delivery.
    pub async fn accept_event(&self, event: NewEvent) -> StoreResult<Accepted> {
        self.submit(|reply| batch::Op::Accept(event, reply)).await
    }

    /// Durably records the events of one webhook batch with their queued runs in ONE
    /// transaction: all are stored, or none (an error then says why). Each event is
    /// deduplicated on its own key as [`Store::accept_event`] does, so the answers, in the
    /// order of `events`, mix new runs and duplicates. Not group-committed with other requests:
    /// isolating a failed group commit would split the batch.
    pub async fn accept_events(&self, events: Vec<NewEvent>) -> StoreResult<Vec<Accepted>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        batch::accept_together(&*self.backend, events).await
    }

    /// Stores a run that already executed outside the queue (a test run) with its event and
    /// steps, in one transaction. The event is never deduplicated.
    pub async fn record_finished_run(
        &self,
        event: NewEvent,
        outcome: RunOutcome,
    ) -> StoreResult<()> {
        on!(self.write, [], |c| runs::record_finished(
            c, &event, &outcome
        ))
    }

    /// Claims up to `limit` queued runs for `owner` with a lease of `lease_ms`.
    pub async fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        lease_ms: i64,
    ) -> StoreResult<Vec<ClaimedRun>> {
        let owner = owner.to_string();
        self.submit(|reply| batch::Op::Claim {
            owner,
            limit,
            lease_ms,
            reply,
        })
        .await
    }

    /// Extends the leases `owner` holds on `run_ids`, the runs it is executing. Returns how many.
    pub async fn renew_leases(
        &self,
        owner: &str,
        run_ids: &[String],
        lease_ms: i64,
    ) -> StoreResult<u64> {
        on!(self.write, [owner, run_ids], |c| runs::renew(
            c, &owner, &run_ids, lease_ms
        ))
    }

    /// Puts a run `outcome.owner` is executing back in the queue, not to be claimed before
    /// `not_before` (ms since the epoch), with its steps so far: a retry waiting out a long
    /// backoff gives its worker slot back. Returns false when the owner no longer held the lease.
    pub async fn defer_run(&self, outcome: RunOutcome, not_before: i64) -> StoreResult<bool> {
        on!(self.write, [], |c| runs::defer(c, &outcome, not_before))
    }

    /// Puts runs whose lease expired back in the queue. Returns how many.
    pub async fn requeue_expired(&self) -> StoreResult<u64> {
        on!(self.write, [], |c| runs::requeue_expired(c))
    }

    /// Hands the runs `owner` holds back to the queue (graceful shutdown). Returns how many.
    pub async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        on!(self.write, [owner], |c| runs::release(c, &owner))
    }

    /// Records a run's end. Returns false when `owner` no longer held the lease (ignored).
    pub async fn finish_run(&self, outcome: RunOutcome) -> StoreResult<bool> {
        self.submit(|reply| batch::Op::Finish(outcome, reply)).await
    }

    /// Queues a failed run again; succeeded steps are kept and not re-run.
    pub async fn retry_run(&self, actor: &Actor, id: &str) -> StoreResult<RunSummary> {
        on!(self.write, [actor, id], |c| runs::retry(c, &actor, &id))
    }

    /// One run with its event and steps.
    pub async fn get_run(&self, id: &str) -> StoreResult<Option<RunDetail>> {
        on!(self.read, [id], |c| runs::get(c, &id))
    }

    /// The stored headers of the event that started a run (`None` for an unknown run).
    pub async fn run_trigger_headers(&self, run_id: &str) -> StoreResult<Option<Value>> {
        on!(self.read, [run_id], |c| runs::trigger_headers(c, &run_id))
    }

    /// Runs, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Page<RunSummary>> {
        on!(self.read, [filter], |c| runs::list(c, &filter))
    }

    /// Creates or replaces an encrypted secret. Returns true when created.
    pub async fn put_secret(
        &self,
        actor: &Actor,
        scope: &Scope,
        name: &str,
        nonce: &str,
        ciphertext: &str,
    ) -> StoreResult<bool> {
        on!(self.write, [actor, scope, name, nonce, ciphertext], |c| {
            secrets::put(c, &actor, &scope, &name, &nonce, &ciphertext)
        })
    }

    /// Secret names and times of a project, by name.
    pub async fn list_secrets(&self, scope: &Scope) -> StoreResult<Vec<SecretInfo>> {
        on!(self.read, [scope], |c| secrets::list(c, &scope))
    }

    /// `(name, nonce, ciphertext)` of the named secrets that exist.
    pub async fn get_secrets(
        &self,
        scope: &Scope,
        names: &[String],
    ) -> StoreResult<Vec<(String, String, String)>> {
        on!(self.read, [scope, names], |c| secrets::get(
            c, &scope, &names
        ))
    }

    /// Deletes a secret. Returns false when there was none.
    pub async fn delete_secret(
        &self,
        actor: &Actor,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<bool> {
        on!(self.write, [actor, scope, name], |c| secrets::delete(
            c, &actor, &scope, &name
        ))
    }

    /// Appends audit events that are not part of another change (plugin installed, ...).
    pub async fn record_audit(&self, drafts: Vec<AuditDraft>) -> StoreResult<()> {
        on!(self.write, [], |c| audit::append(c, &drafts))
    }

    /// Audit events (envelopes), newest first.
    pub async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Page<Value>> {
        on!(self.read, [filter], |c| audit::list(c, &filter))
    }

    /// The oldest audit events created before `before` (RFC 3339): `(seq, created, body)`.
    pub async fn expired_audit(
        &self,
        before: &str,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String, String)>> {
        on!(self.read, [before], |c| audit::expired(c, &before, limit))
    }

    /// Deletes audit events up to and including `seq`.
    pub async fn delete_audit_through(&self, seq: i64) -> StoreResult<u64> {
        on!(self.write, [], |c| audit::delete_through(c, seq))
    }

    /// Audit rows in chain order after `after_seq`, for verification.
    pub async fn audit_chain(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRow>> {
        on!(self.read, [], |c| audit::chain(c, after_seq, limit))
    }

    /// Saves a new destination (audited).
    pub async fn create_destination(
        &self,
        actor: &Actor,
        destination: &DestinationRecord,
    ) -> StoreResult<()> {
        on!(self.write, [actor, destination], |c| destinations::create(
            c,
            &actor,
            &destination
        ))
    }

    /// Replaces a destination's settings (audited).
    pub async fn update_destination(
        &self,
        actor: &Actor,
        destination: &DestinationRecord,
    ) -> StoreResult<()> {
        on!(self.write, [actor, destination], |c| destinations::update(
            c,
            &actor,
            &destination
        ))
    }

    /// Deletes a destination and its pending deliveries (audited). False when there was none.
    pub async fn delete_destination(&self, actor: &Actor, id: &str) -> StoreResult<bool> {
        on!(self.write, [actor, id], |c| destinations::delete(
            c, &actor, &id
        ))
    }

    pub async fn get_destination(&self, id: &str) -> StoreResult<Option<DestinationRecord>> {
        on!(self.read, [id], |c| destinations::get(c, &id))
    }

    /// Destinations; `only` limits them to the PROJECT destinations of those projects.
    pub async fn list_destinations(
        &self,
        only: Option<Vec<String>>,
    ) -> StoreResult<Vec<DestinationRecord>> {
        on!(self.read, [], |c| destinations::list(c, only.as_deref()))
    }

    /// Per destination (the first `destinations` by id): PENDING entries counted up to
    /// `max_counted`, the oldest one's age, and the breaker state; what `/metrics` samples.
    pub async fn delivery_backlog(
        &self,
        destinations: u32,
        max_counted: u32,
    ) -> StoreResult<Vec<DestinationBacklog>> {
        on!(self.read, [], |c| destinations::backlog(
            c,
            destinations,
            max_counted
        ))
    }

    /// Claims, for up to `destinations` destinations, up to `per_destination` consecutive due
    /// entries from the head of each one's queue, in event order: a worker sends them one after
    /// the other over one connection, so order holds and throughput does not hinge on one
    /// database round trip per event.
    pub async fn claim_delivery_batches(
        &self,
        destinations: u32,
        per_destination: u32,
        lease_ms: i64,
    ) -> StoreResult<Vec<DueDelivery>> {
        on!(self.write, [], |c| destinations::claim(
            c,
            destinations,
            per_destination,
            lease_ms
        ))
    }

    /// Records a batch of attempts and hands `released` entries (claimed but not attempted,
    /// because an earlier one in their batch failed) back to the queue.
    pub async fn finish_deliveries(
        &self,
        results: &[DeliveryResult],
        released: &[String],
    ) -> StoreResult<()> {
        on!(self.write, [results, released], |c| destinations::finish(
            c, &results, &released
        ))
    }

    /// Attempts for a destination, newest first.
    pub async fn list_deliveries(
        &self,
        destination_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        on!(self.read, [destination_id], |c| destinations::deliveries(
            c,
            &destination_id,
            limit
        ))
    }

    /// Queues FAILED entries of a destination again (one event, or all). Returns how many.
    pub async fn redeliver(
        &self,
        destination_id: &str,
        selection: &Redelivery,
    ) -> StoreResult<u64> {
        on!(self.write, [destination_id, selection], |c| {
            destinations::redeliver(c, &destination_id, &selection)
        })
    }

    /// How many runs are in each live status, for `/metrics`.
    pub async fn queue_depth(&self) -> StoreResult<(i64, i64)> {
        on!(self.read, [], |c| runs::queue_depth(c))
    }

    /// Stores an installed plugin component (replacing that name@version) with its audit event,
    /// in one transaction, so every restart and every process serves it.
    pub async fn save_plugin(&self, plugin: &StoredPlugin, draft: AuditDraft) -> StoreResult<()> {
        on!(self.write, [plugin], |c| plugins::save(c, &plugin, draft))
    }

    /// Deletes a stored plugin component (`name@version` with `digest`) with its audit event,
    /// unless a flow's published version or pending draft uses it (see [`plugins::remove`]).
    pub async fn remove_plugin(
        &self,
        name: &str,
        version: &str,
        digest: &str,
        draft: AuditDraft,
    ) -> StoreResult<PluginRemoval> {
        on!(self.write, [name, version, digest], |c| plugins::remove(
            c, &name, &version, &digest, draft
        ))
    }

    /// `(name, version, digest)` of every stored plugin, by name and version.
    pub async fn plugin_digests(&self) -> StoreResult<Vec<(String, String, String)>> {
        on!(self.read, [], |c| plugins::digests(c))
    }

    /// One stored plugin with its component bytes.
    pub async fn get_plugin(&self, name: &str, version: &str) -> StoreResult<Option<StoredPlugin>> {
        on!(self.read, [name, version], |c| plugins::get(
            c, &name, &version
        ))
    }

    /// Records `key` in a flow's memory when `record` is set. True when the key was not
    /// known before (atomically, across processes).
    pub async fn remember_key(&self, flow_id: &str, key: &str, record: bool) -> StoreResult<bool> {
        if record {
            on!(self.write, [flow_id, key], |c| plugins::record_key(
                c, &flow_id, &key
            ))
        } else {
            on!(self.read, [flow_id, key], |c| plugins::is_new_key(
                c, &flow_id, &key
            ))
        }
    }

    /// The live cache entry for `key` in a flow's cache.
    pub async fn cache_get(&self, flow_id: &str, key: &str) -> StoreResult<Option<CacheEntry>> {
        let now = epoch_ms();
        on!(self.read, [flow_id, key], |c| cache::get(
            c, &flow_id, &key, now
        ))
    }

    /// Stores a cache entry unless the flow holds `max_entries` other live ones.
    pub async fn cache_set(
        &self,
        flow_id: &str,
        key: &str,
        entry: &CacheEntry,
        max_entries: u64,
    ) -> StoreResult<Result<(), CacheRefusal>> {
        let now = epoch_ms();
        on!(self.write, [flow_id, key, entry], |c| cache::set(
            c,
            &flow_id,
            &key,
            &entry,
            now,
            max_entries
        ))
    }

    /// Deletes a cache entry; true when a live one was removed.
    pub async fn cache_delete(&self, flow_id: &str, key: &str) -> StoreResult<bool> {
        let now = epoch_ms();
        on!(self.write, [flow_id, key], |c| cache::delete(
            c, &flow_id, &key, now
        ))
    }

    /// Reads a `threshold` step's state for one key, applies `update` and writes the result,
    /// atomically across processes (see [`windows`]). A new key is refused when the step
    /// already holds `max_keys` live ones.
    pub async fn window_update<T: Send + 'static>(
        &self,
        (flow_id, step, key): (&str, &str, &str),
        now_ms: i64,
        max_keys: u64,
        update: impl FnOnce(Option<String>) -> WindowWrite<T> + Send + 'static,
    ) -> StoreResult<Result<T, WindowRefusal>> {
        on!(self.write, [flow_id, step, key], |c| windows::update(
            c,
            (&flow_id, &step, &key),
            now_ms,
            max_keys,
            update
        ))
    }

    /// Bodies of the live events a flow received in `[from, to)` (stored RFC 3339 form),
    /// oldest first, at most `limit`: what a replay of stored events runs over.
    pub async fn flow_events(
        &self,
        flow_id: &str,
        from: &str,
        to: &str,
        limit: i64,
    ) -> StoreResult<Vec<String>> {
        on!(self.read, [flow_id, from, to], |c| history::flow_events(
            c, &flow_id, &from, &to, limit
        ))
    }

    /// Deletes up to `limit` expired `threshold` step states; returns how many went.
    pub async fn delete_expired_windows(&self, limit: i64) -> StoreResult<u64> {
        let now = epoch_ms();
        on!(self.write, [], |c| windows::delete_expired(c, now, limit))
    }

    /// Test hook: runs a write job that panics.
    #[cfg(test)]
    pub async fn panic_in_write_for_test(&self) -> StoreResult<()> {
        self.write(job(|_| Box::pin(async { panic!("a write that panics") })))
            .await
    }

    /// Test hook: makes the backend's writer stop as if it had failed with `reason`.
    #[cfg(test)]
    pub async fn stop_writer_for_test(&self, reason: &str) {
        self.backend.stop_writer_for_test(reason);
    }
}
