//! The PostgreSQL backend, for deployments where several `hookflow serve` processes share one
//! database.
//!
//! Behaviour is the SQLite backend's, observable detail for detail (ids, RFC 3339 times, dedup,
//! audit events in the transaction of their change, the hash chain, outbox rows, cursors); the
//! conformance suite (`store::conformance`) runs the same tests on both. What differs is how
//! the guarantees hold with several writers:
//!
//! - **Runs** are claimed with `FOR UPDATE SKIP LOCKED` under a lease (owner + expiry); a finish
//!   applies only while its owner still holds the lease, so a run finishes exactly once
//!   ([`runs`]).
//! - **Audit appends** are serialized by a locked one-row chain head, so the chain never forks
//!   ([`audit`]).
//! - **Deliveries**: a claim locks the destinations it serves (`SKIP LOCKED`) and leases
//!   their head entries, so each destination is served by one process at a time, in event
//!   order ([`destinations`]).
//! - **Hot-path writes** (`accept_event`, `finish_run`) are group-committed by a few batch
//!   tasks ([`batch`]); dedup rests on the unique index, not on the batching.
//! - **Wake-ups**: transactions that queue runs `NOTIFY hookflow_runs`;
//!   [`PostgresStore::listen_for_work`] subscribes ([`listen`]).
//!
//! Durability: a call returns only after its transaction committed. With PostgreSQL's default
//! `synchronous_commit = on` that means the commit is flushed to the WAL (and to synchronous
//! standbys, if configured); the store does not lower it.

mod audit;
mod batch;
mod destinations;
mod flows;
mod listen;
mod memory;
mod plugins;
mod rows;
mod runs;
mod secrets;

pub use listen::{Hints, WorkListener};

use super::*;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Connections per process by default. Batch writers, claims, sweeps and API reads share them;
/// the work listener has one more of its own. Mind PostgreSQL's `max_connections` (100 by
/// default) when running many processes.
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// Group-commit tasks per process: while one batch commits, the next is being written.
const BATCH_WRITERS: usize = 2;

/// PostgreSQL implementation of [`Store`].
pub struct PostgresStore {
    pool: PgPool,
    ops: mpsc::Sender<batch::Op>,
    options: PgConnectOptions,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`), applies migrations
    /// (several processes starting at once is fine: sqlx serializes migrations with an advisory
    /// lock) and starts the group-commit tasks. Must be called inside a Tokio runtime.
    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        PostgresStore::open_with(url, DEFAULT_POOL_SIZE).await
    }

    /// [`PostgresStore::open`] with a pool of `max_connections` (at least 2: one batch writer
    /// and one other caller must be able to proceed at once).
    pub async fn open_with(url: &str, max_connections: u32) -> StoreResult<PostgresStore> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        ensure_default_scope(&pool).await?;
        let ops = batch::spawn(pool.clone(), BATCH_WRITERS);
        Ok(PostgresStore { pool, ops, options })
    }

    /// Subscribes to `hookflow_runs`: the returned listener's [`WorkListener::wait`] resolves
    /// when any process committed a transaction that queued runs (accepted events, a retry,
    /// re-queued expired or released leases). Use it to wake the claim loop early; keep polling
    /// as the fallback, since notifications are hints that can be lost on reconnects.
    pub async fn listen_for_work(&self) -> StoreResult<WorkListener> {
        WorkListener::connect(self.options.clone()).await
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

/// The default platform and project; idempotent, so concurrent first starts are fine.
async fn ensure_default_scope(pool: &PgPool) -> StoreResult<()> {
    let now = now_text();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO platforms (id, name, created) VALUES ('default', 'Default platform', $1) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO projects (id, platform_id, name, created) VALUES ('default', 'default', 'Default project', $1) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn default_scope(&self) -> StoreResult<Scope> {
        Ok(Scope {
            platform_id: "default".into(),
            project_id: "default".into(),
        })
    }

    async fn create_flow(
        &self,
        actor: &Actor,
        scope: &Scope,
        name: &str,
        definition: &Value,
    ) -> StoreResult<FlowRecord> {
        flows::create(&self.pool, actor, scope, name, definition).await
    }

    async fn update_flow(
        &self,
        actor: &Actor,
        id: &str,
        name: &str,
        definition: &Value,
    ) -> StoreResult<FlowRecord> {
        flows::update(&self.pool, actor, id, name, definition).await
    }

    async fn delete_flow(&self, actor: &Actor, id: &str) -> StoreResult<bool> {
        flows::delete(&self.pool, actor, id).await
    }

    async fn get_flow(&self, id: &str) -> StoreResult<Option<FlowRecord>> {
        flows::get(&self.pool, id).await
    }

    async fn get_flow_version(&self, id: &str, version: i64) -> StoreResult<Option<FlowRecord>> {
        flows::get_version(&self.pool, id, version).await
    }

    async fn list_flows(
        &self,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> StoreResult<Page<FlowRecord>> {
        flows::list(&self.pool, limit, cursor).await
    }

    async fn accept_event(&self, event: NewEvent) -> StoreResult<Accepted> {
        self.submit(|reply| batch::Op::Accept(event, reply)).await
    }

    async fn record_finished_run(&self, event: NewEvent, outcome: RunOutcome) -> StoreResult<()> {
        runs::record_finished(&self.pool, &event, &outcome).await
    }

    async fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        lease_ms: i64,
    ) -> StoreResult<Vec<ClaimedRun>> {
        runs::claim(&self.pool, owner, limit, lease_ms).await
    }

    async fn renew_leases(&self, owner: &str, lease_ms: i64) -> StoreResult<u64> {
        runs::renew(&self.pool, owner, lease_ms).await
    }

    async fn requeue_expired(&self) -> StoreResult<u64> {
        runs::requeue_expired(&self.pool).await
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        runs::release(&self.pool, owner).await
    }

    /// Only for a single-process deployment at startup: see [`runs::requeue_all_running`].
    /// A server sharing the database with other live processes must not call it.
    async fn requeue_all_running(&self) -> StoreResult<u64> {
        runs::requeue_all_running(&self.pool).await
    }

    async fn finish_run(&self, outcome: RunOutcome) -> StoreResult<bool> {
        self.submit(|reply| batch::Op::Finish(outcome, reply)).await
    }

    async fn retry_run(&self, actor: &Actor, id: &str) -> StoreResult<RunSummary> {
        runs::retry(&self.pool, actor, id).await
    }

    async fn get_run(&self, id: &str) -> StoreResult<Option<RunDetail>> {
        runs::get(&self.pool, id).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Page<RunSummary>> {
        runs::list(&self.pool, filter).await
    }

    async fn put_secret(
        &self,
        actor: &Actor,
        scope: &Scope,
        name: &str,
        nonce: &str,
        ciphertext: &str,
    ) -> StoreResult<bool> {
        secrets::put(&self.pool, actor, scope, name, nonce, ciphertext).await
    }

    async fn list_secrets(&self, scope: &Scope) -> StoreResult<Vec<SecretInfo>> {
        secrets::list(&self.pool, scope).await
    }

    async fn get_secrets(
        &self,
        scope: &Scope,
        names: &[String],
    ) -> StoreResult<Vec<(String, String, String)>> {
        secrets::get(&self.pool, scope, names).await
    }

    async fn delete_secret(&self, actor: &Actor, scope: &Scope, name: &str) -> StoreResult<bool> {
        secrets::delete(&self.pool, actor, scope, name).await
    }

    async fn record_audit(&self, drafts: Vec<AuditDraft>) -> StoreResult<()> {
        audit::record(&self.pool, &drafts).await
    }

    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Page<Value>> {
        audit::list(&self.pool, filter).await
    }

    async fn expired_audit(
        &self,
        before: &str,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String, String)>> {
        audit::expired(&self.pool, before, limit).await
    }

    async fn delete_audit_through(&self, seq: i64) -> StoreResult<u64> {
        audit::delete_through(&self.pool, seq).await
    }

    async fn audit_chain(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRow>> {
        audit::chain(&self.pool, after_seq, limit).await
    }

    async fn create_destination(
        &self,
        actor: &Actor,
        destination: &DestinationRecord,
    ) -> StoreResult<()> {
        destinations::create(&self.pool, actor, destination).await
    }

    async fn update_destination(
        &self,
        actor: &Actor,
        destination: &DestinationRecord,
    ) -> StoreResult<()> {
        destinations::update(&self.pool, actor, destination).await
    }

    async fn delete_destination(&self, actor: &Actor, id: &str) -> StoreResult<bool> {
        destinations::delete(&self.pool, actor, id).await
    }

    async fn get_destination(&self, id: &str) -> StoreResult<Option<DestinationRecord>> {
        destinations::get(&self.pool, id).await
    }

    async fn list_destinations(&self) -> StoreResult<Vec<DestinationRecord>> {
        destinations::list(&self.pool).await
    }

    async fn claim_deliveries(&self, limit: u32, lease_ms: i64) -> StoreResult<Vec<DueDelivery>> {
        destinations::claim(&self.pool, limit, 1, lease_ms).await
    }

    async fn finish_delivery(&self, result: &DeliveryResult) -> StoreResult<()> {
        destinations::finish(&self.pool, std::slice::from_ref(result), &[]).await
    }

    async fn claim_delivery_batches(
        &self,
        destinations: u32,
        per_destination: u32,
        lease_ms: i64,
    ) -> StoreResult<Vec<DueDelivery>> {
        destinations::claim(&self.pool, destinations, per_destination, lease_ms).await
    }

    async fn finish_deliveries(
        &self,
        results: &[DeliveryResult],
        released: &[String],
    ) -> StoreResult<()> {
        destinations::finish(&self.pool, results, released).await
    }

    async fn list_deliveries(
        &self,
        destination_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        destinations::deliveries(&self.pool, destination_id, limit).await
    }

    async fn redeliver(&self, destination_id: &str, selection: &Redelivery) -> StoreResult<u64> {
        destinations::redeliver(&self.pool, destination_id, selection).await
    }

    async fn queue_depth(&self) -> StoreResult<(i64, i64)> {
        runs::queue_depth(&self.pool).await
    }

    async fn remember_key(&self, flow_id: &str, key: &str, record: bool) -> StoreResult<bool> {
        memory::remember(&self.pool, flow_id, key, record).await
    }

    async fn save_plugin(&self, plugin: &StoredPlugin, draft: AuditDraft) -> StoreResult<()> {
        plugins::save(&self.pool, plugin, draft).await
    }

    async fn plugin_digests(&self) -> StoreResult<Vec<(String, String, String)>> {
        plugins::digests(&self.pool).await
    }

    async fn get_plugin(&self, name: &str, version: &str) -> StoreResult<Option<StoredPlugin>> {
        plugins::get(&self.pool, name, version).await
    }
}
