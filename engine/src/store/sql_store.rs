//! [`Store`] implemented once, over any [`Backend`]: each call becomes a [`Job`](super::sql::Job)
//! the backend runs in one transaction (writes) or on one connection (reads); hot-path writes go
//! through the group commit ([`super::batch`]).

use super::audit::AuditDraft;
use super::sql::{Backend, job};
use super::*;
use tokio::sync::{mpsc, oneshot};

/// Runs a call of the logic layer as a job on the backend: `on!(self.write, |c| f(c, &x))`.
/// Arguments are moved in (clone borrowed ones first), since a job may run on another thread.
macro_rules! on {
    ($self:ident . $how:ident, |$c:ident| $call:expr) => {
        $self
            .backend
            .$how(job(move |$c| Box::pin(async move { $call.await })))
            .await
    };
}

/// The store: business logic written once, run by a backend.
pub struct SqlStore<B: Backend> {
    backend: Arc<B>,
    ops: mpsc::Sender<batch::Op>,
}

impl<B: Backend> SqlStore<B> {
    /// Wraps `backend` and starts its group-commit tasks (needs a Tokio runtime).
    pub fn new(backend: Arc<B>) -> SqlStore<B> {
        let ops = batch::spawn(backend.clone());
        SqlStore { backend, ops }
    }

    /// The backend, for start-up work the `Store` interface does not offer.
    pub fn backend(&self) -> &Arc<B> {
        &self.backend
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

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn default_scope(&self) -> StoreResult<Scope> {
        Ok(Scope {
            platform_id: "default".into(),
            project_id: "default".into(),
        })
    }

    async fn health(&self) -> StoreResult<()> {
        self.backend.health().await
    }

    async fn create_flow(
        &self,
        actor: &Actor,
        scope: &Scope,
        name: &str,
        definition: &Value,
    ) -> StoreResult<FlowRecord> {
        let (actor, scope, name, definition) = (
            actor.clone(),
            scope.clone(),
            name.to_string(),
            definition.clone(),
        );
        on!(self.write, |c| flows::create(
            c,
            &actor,
            &scope,
            &name,
            &definition
        ))
    }

    async fn update_flow(
        &self,
        actor: &Actor,
        id: &str,
        name: &str,
        definition: &Value,
    ) -> StoreResult<FlowRecord> {
        let (actor, id, name, definition) = (
            actor.clone(),
            id.to_string(),
            name.to_string(),
            definition.clone(),
        );
        on!(self.write, |c| flows::update(
            c,
            &actor,
            &id,
            &name,
            &definition
        ))
    }

    async fn delete_flow(&self, actor: &Actor, id: &str) -> StoreResult<bool> {
        let (actor, id) = (actor.clone(), id.to_string());
        on!(self.write, |c| flows::delete(c, &actor, &id))
    }

    async fn get_flow(&self, id: &str) -> StoreResult<Option<FlowRecord>> {
        let id = id.to_string();
        on!(self.read, |c| flows::get(c, &id))
    }

    async fn get_flow_version(&self, id: &str, version: i64) -> StoreResult<Option<FlowRecord>> {
        let id = id.to_string();
        on!(self.read, |c| flows::get_version(c, &id, version))
    }

    async fn list_flows(
        &self,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> StoreResult<Page<FlowRecord>> {
        on!(self.read, |c| flows::list(c, limit, cursor.as_ref()))
    }

    async fn accept_event(&self, event: NewEvent) -> StoreResult<Accepted> {
        self.submit(|reply| batch::Op::Accept(event, reply)).await
    }

    async fn record_finished_run(&self, event: NewEvent, outcome: RunOutcome) -> StoreResult<()> {
        on!(self.write, |c| runs::record_finished(c, &event, &outcome))
    }

    async fn claim_runs(
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

    async fn renew_leases(&self, owner: &str, lease_ms: i64) -> StoreResult<u64> {
        let owner = owner.to_string();
        on!(self.write, |c| runs::renew(c, &owner, lease_ms))
    }

    async fn requeue_expired(&self) -> StoreResult<u64> {
        on!(self.write, |c| runs::requeue_expired(c))
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        let owner = owner.to_string();
        on!(self.write, |c| runs::release(c, &owner))
    }

    async fn finish_run(&self, outcome: RunOutcome) -> StoreResult<bool> {
        self.submit(|reply| batch::Op::Finish(outcome, reply)).await
    }

    async fn retry_run(&self, actor: &Actor, id: &str) -> StoreResult<RunSummary> {
        let (actor, id) = (actor.clone(), id.to_string());
        on!(self.write, |c| runs::retry(c, &actor, &id))
    }

    async fn get_run(&self, id: &str) -> StoreResult<Option<RunDetail>> {
        let id = id.to_string();
        on!(self.read, |c| runs::get(c, &id))
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Page<RunSummary>> {
        let filter = filter.clone();
        on!(self.read, |c| runs::list(c, &filter))
    }

    async fn put_secret(
        &self,
        actor: &Actor,
        scope: &Scope,
        name: &str,
        nonce: &str,
        ciphertext: &str,
    ) -> StoreResult<bool> {
        let (actor, scope, name, nonce, ciphertext) = (
            actor.clone(),
            scope.clone(),
            name.to_string(),
            nonce.to_string(),
            ciphertext.to_string(),
        );
        on!(self.write, |c| secrets::put(
            c,
            &actor,
            &scope,
            &name,
            &nonce,
            &ciphertext
        ))
    }

    async fn list_secrets(&self, scope: &Scope) -> StoreResult<Vec<SecretInfo>> {
        let scope = scope.clone();
        on!(self.read, |c| secrets::list(c, &scope))
    }

    async fn get_secrets(
        &self,
        scope: &Scope,
        names: &[String],
    ) -> StoreResult<Vec<(String, String, String)>> {
        let (scope, names) = (scope.clone(), names.to_vec());
        on!(self.read, |c| secrets::get(c, &scope, &names))
    }

    async fn delete_secret(&self, actor: &Actor, scope: &Scope, name: &str) -> StoreResult<bool> {
        let (actor, scope, name) = (actor.clone(), scope.clone(), name.to_string());
        on!(self.write, |c| secrets::delete(c, &actor, &scope, &name))
    }

    async fn record_audit(&self, drafts: Vec<AuditDraft>) -> StoreResult<()> {
        on!(self.write, |c| audit::append(c, &drafts))
    }

    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Page<Value>> {
        let filter = filter.clone();
        on!(self.read, |c| audit::list(c, &filter))
    }

    async fn expired_audit(
        &self,
        before: &str,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String, String)>> {
        let before = before.to_string();
        on!(self.read, |c| audit::expired(c, &before, limit))
    }

    async fn delete_audit_through(&self, seq: i64) -> StoreResult<u64> {
        on!(self.write, |c| audit::delete_through(c, seq))
    }

    async fn audit_chain(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRow>> {
        on!(self.read, |c| audit::chain(c, after_seq, limit))
    }

    async fn create_destination(
        &self,
        actor: &Actor,
        destination: &DestinationRecord,
    ) -> StoreResult<()> {
        let (actor, destination) = (actor.clone(), destination.clone());
        on!(self.write, |c| destinations::create(
            c,
            &actor,
            &destination
        ))
    }

    async fn update_destination(
        &self,
        actor: &Actor,
        destination: &DestinationRecord,
    ) -> StoreResult<()> {
        let (actor, destination) = (actor.clone(), destination.clone());
        on!(self.write, |c| destinations::update(
            c,
            &actor,
            &destination
        ))
    }

    async fn delete_destination(&self, actor: &Actor, id: &str) -> StoreResult<bool> {
        let (actor, id) = (actor.clone(), id.to_string());
        on!(self.write, |c| destinations::delete(c, &actor, &id))
    }

    async fn get_destination(&self, id: &str) -> StoreResult<Option<DestinationRecord>> {
        let id = id.to_string();
        on!(self.read, |c| destinations::get(c, &id))
    }

    async fn list_destinations(&self) -> StoreResult<Vec<DestinationRecord>> {
        on!(self.read, |c| destinations::list(c))
    }

    async fn claim_delivery_batches(
        &self,
        destinations: u32,
        per_destination: u32,
        lease_ms: i64,
    ) -> StoreResult<Vec<DueDelivery>> {
        on!(self.write, |c| destinations::claim(
            c,
            destinations,
            per_destination,
            lease_ms
        ))
    }

    async fn finish_deliveries(
        &self,
        results: &[DeliveryResult],
        released: &[String],
    ) -> StoreResult<()> {
        let (results, released) = (results.to_vec(), released.to_vec());
        on!(self.write, |c| destinations::finish(c, &results, &released))
    }

    async fn list_deliveries(
        &self,
        destination_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let destination_id = destination_id.to_string();
        on!(self.read, |c| destinations::deliveries(
            c,
            &destination_id,
            limit
        ))
    }

    async fn redeliver(&self, destination_id: &str, selection: &Redelivery) -> StoreResult<u64> {
        let (destination_id, selection) = (destination_id.to_string(), selection.clone());
        on!(self.write, |c| destinations::redeliver(
            c,
            &destination_id,
            &selection
        ))
    }

    async fn queue_depth(&self) -> StoreResult<(i64, i64)> {
        on!(self.read, |c| runs::queue_depth(c))
    }

    async fn save_plugin(&self, plugin: &StoredPlugin, draft: AuditDraft) -> StoreResult<()> {
        let plugin = plugin.clone();
        on!(self.write, |c| plugins::save(c, &plugin, draft))
    }

    async fn plugin_digests(&self) -> StoreResult<Vec<(String, String, String)>> {
        on!(self.read, |c| plugins::digests(c))
    }

    async fn get_plugin(&self, name: &str, version: &str) -> StoreResult<Option<StoredPlugin>> {
        let (name, version) = (name.to_string(), version.to_string());
        on!(self.read, |c| plugins::get(c, &name, &version))
    }

    async fn remember_key(&self, flow_id: &str, key: &str, record: bool) -> StoreResult<bool> {
        let (flow_id, key) = (flow_id.to_string(), key.to_string());
        if record {
            on!(self.write, |c| plugins::record_key(c, &flow_id, &key))
        } else {
            on!(self.read, |c| plugins::is_new_key(c, &flow_id, &key))
        }
    }

    #[cfg(test)]
    async fn panic_in_write_for_test(&self) -> StoreResult<()> {
        self.backend
            .write(job(|_| Box::pin(async { panic!("a write that panics") })))
            .await
    }

    #[cfg(test)]
    async fn stop_writer_for_test(&self, reason: &str) {
        self.backend.stop_writer_for_test(reason);
    }
}
