//! The embedded SQLite backend (WAL mode).
//!
//! SQLite allows one writer at a time, so all writes share a single connection. Hot-path writes
//! (accepting events, finishing runs) go through a batching task: whatever requests arrived while
//! the previous commit was running are written together with multi-row statements in one
//! transaction, then acknowledged together (group commit). Reads use a separate pool, which WAL
//! lets run concurrently with the writer.

use super::audit::{self, AuditDraft};
use super::*;
use serde_json::json;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Rows per multi-row statement; keeps bound parameters far below SQLite's limit.
const ROWS_PER_STATEMENT: usize = 400;
/// Requests written in one group commit at most.
const MAX_BATCH: usize = 2000;

/// A pending hot-path write and where to send its result.
enum Op {
    Accept(NewEvent, oneshot::Sender<StoreResult<Accepted>>),
    Finish(RunOutcome, oneshot::Sender<StoreResult<bool>>),
    /// Claims join the same group commit: a batch accepts, finishes and claims in one
    /// transaction instead of three.
    Claim {
        owner: String,
        limit: u32,
        lease_ms: i64,
        reply: oneshot::Sender<StoreResult<Vec<ClaimedRun>>>,
    },
}

/// SQLite implementation of [`Store`].
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    ops: mpsc::Sender<Op>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or a plain path),
    /// applies migrations and starts the batching writer. `synchronous_full` trades some
    /// throughput for surviving power loss, not just process crashes.
    pub async fn open(url: &str, synchronous_full: bool) -> StoreResult<SqliteStore> {
        let url = if url.starts_with("sqlite:") {
            url.to_string()
        } else {
            format!("sqlite://{url}")
        };
        let base = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", "-16000")
            .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(base.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            // Readers serve page-sized API queries: a smaller page cache each keeps the server's
            // resident size in check (the writer keeps the large one).
            .connect_with(base.read_only(true).pragma("cache_size", "-4000"))
            .await?;
        let (ops, rx) = mpsc::channel(16 * 1024);
        tokio::spawn(write_loop(writer.clone(), rx));
        let store = SqliteStore {
            writer,
            reader,
            ops,
        };
        store.ensure_default_scope().await?;
        Ok(store)
    }

    async fn ensure_default_scope(&self) -> StoreResult<()> {
        let now = now_text();
        let mut tx = self.writer.begin().await?;
        sqlx::query("INSERT INTO platforms (id, name, created) VALUES ('default', 'Default platform', ?) ON CONFLICT (id) DO NOTHING")
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO projects (id, platform_id, name, created) VALUES ('default', 'default', 'Default project', ?) ON CONFLICT (id) DO NOTHING")
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Op,
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
impl Store for SqliteStore {
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
        let id = new_id();
        let now = now_text();
        let text = definition.to_string();
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO flows (id, platform_id, project_id, name, version, definition, created, updated) VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&scope.platform_id)
        .bind(&scope.project_id)
        .bind(name)
        .bind(&text)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        insert_version(&mut tx, &id, 1, &text, &now).await?;
        let data = json!({"flow": {"id": id, "displayName": name, "version": 1}});
        let draft = AuditDraft::new(
            &scope.platform_id,
            Some(&scope.project_id),
            actor,
            "flow.created",
            data,
        );
        audit::append(&mut tx, &[draft]).await?;
        tx.commit().await?;
        Ok(FlowRecord {
            id,
            platform_id: scope.platform_id.clone(),
            project_id: scope.project_id.clone(),
            name: name.to_string(),
            version: 1,
            definition: definition.clone(),
            created: now.clone(),
            updated: now,
        })
    }

    async fn update_flow(
        &self,
        actor: &Actor,
        id: &str,
        name: &str,
        definition: &Value,
    ) -> StoreResult<FlowRecord> {
        let now = now_text();
        let text = definition.to_string();
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(
            "UPDATE flows SET name = ?, version = version + 1, definition = ?, updated = ? WHERE id = ? AND deleted IS NULL RETURNING version, platform_id, project_id",
        )
        .bind(name)
        .bind(&text)
        .bind(&now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("flow {id}")))?;
        let version: i64 = row.try_get("version")?;
        insert_version(&mut tx, id, version, &text, &now).await?;
        let (platform, project): (String, String) =
            (row.try_get("platform_id")?, row.try_get("project_id")?);
        let data = json!({"flow": {"id": id, "displayName": name, "version": version}});
        let draft = AuditDraft::new(&platform, Some(&project), actor, "flow.updated", data);
        audit::append(&mut tx, &[draft]).await?;
        tx.commit().await?;
        self.get_flow(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("flow {id}")))
    }

    async fn delete_flow(&self, actor: &Actor, id: &str) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(
            "UPDATE flows SET deleted = ? WHERE id = ? AND deleted IS NULL RETURNING name, version, platform_id, project_id",
        )
        .bind(now_text())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let name: String = row.try_get("name")?;
        let version: i64 = row.try_get("version")?;
        let (platform, project): (String, String) =
            (row.try_get("platform_id")?, row.try_get("project_id")?);
        let data = json!({"flow": {"id": id, "displayName": name, "version": version}});
        audit::append(
            &mut tx,
            &[AuditDraft::new(
                &platform,
                Some(&project),
                actor,
                "flow.deleted",
                data,
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_flow(&self, id: &str) -> StoreResult<Option<FlowRecord>> {
        sqlx::query("SELECT * FROM flows WHERE id = ? AND deleted IS NULL")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .map(|row| flow_record(&row))
            .transpose()
    }

    async fn get_flow_version(&self, id: &str, version: i64) -> StoreResult<Option<FlowRecord>> {
        sqlx::query(
            "SELECT f.id, f.platform_id, f.project_id, f.name, v.version, v.definition, f.created, v.created AS updated \
             FROM flow_versions v JOIN flows f ON f.id = v.flow_id WHERE v.flow_id = ? AND v.version = ?",
        )
        .bind(id)
        .bind(version)
        .fetch_optional(&self.reader)
        .await?
        .map(|row| flow_record(&row))
        .transpose()
    }

    async fn list_flows(
        &self,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> StoreResult<Page<FlowRecord>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM flows WHERE deleted IS NULL");
        let backwards = push_cursor(&mut q, cursor.as_ref(), limit);
        let rows = q.build().fetch_all(&self.reader).await?;
        let items = rows
            .iter()
            .map(flow_record)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paginate(items, limit, backwards, cursor.is_some(), |f| {
            f.id.clone()
        }))
    }

    async fn accept_event(&self, event: NewEvent) -> StoreResult<Accepted> {
        self.submit(|tx| Op::Accept(event, tx)).await
    }

    async fn record_finished_run(&self, event: NewEvent, outcome: RunOutcome) -> StoreResult<()> {
        let now = now_text();
        let mut tx = self.writer.begin().await?;
        sqlx::query("INSERT INTO events (id, flow_id, event_key, run_id, headers, body, received) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&event.event_id)
            .bind(&event.flow_id)
            .bind(&event.event_key)
            .bind(&event.run_id)
            .bind(event.headers.to_string())
            .bind(&event.body)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO runs (id, platform_id, project_id, flow_id, flow_version, event_id, environment, status, attempt, created, started, finished, duration_ms, error) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
        )
        .bind(&event.run_id)
        .bind(&event.scope.platform_id)
        .bind(&event.scope.project_id)
        .bind(&event.flow_id)
        .bind(event.flow_version)
        .bind(&event.event_id)
        .bind(event.environment.as_str())
        .bind(outcome.status.as_str())
        .bind(&now)
        .bind(&now)
        .bind(&now)
        .bind(outcome.duration_ms)
        .bind(&outcome.error)
        .execute(&mut *tx)
        .await?;
        let steps: Vec<(&str, &StepRecord)> = outcome
            .steps
            .iter()
            .map(|s| (event.run_id.as_str(), s))
            .collect();
        upsert_steps(&mut tx, &steps).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        lease_ms: i64,
    ) -> StoreResult<Vec<ClaimedRun>> {
        let owner = owner.to_string();
        self.submit(|reply| Op::Claim {
            owner,
            limit,
            lease_ms,
            reply,
        })
        .await
    }

    async fn renew_leases(&self, owner: &str, lease_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE runs SET lease_expires = ? WHERE lease_owner = ? AND status = 'RUNNING'",
        )
        .bind(epoch_ms() + lease_ms)
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn requeue_expired(&self) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE runs SET status = 'QUEUED', lease_owner = NULL, lease_expires = NULL WHERE status = 'RUNNING' AND lease_expires < ?",
        )
        .bind(epoch_ms())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE runs SET status = 'QUEUED', lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ? AND status = 'RUNNING'",
        )
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn requeue_all_running(&self) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE runs SET status = 'QUEUED', lease_owner = NULL, lease_expires = NULL WHERE status = 'RUNNING'")
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn finish_run(&self, outcome: RunOutcome) -> StoreResult<bool> {
        self.submit(|tx| Op::Finish(outcome, tx)).await
    }

    async fn retry_run(&self, actor: &Actor, id: &str) -> StoreResult<RunSummary> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(
            "UPDATE runs SET status = 'QUEUED', finished = NULL, error = NULL, duration_ms = NULL, lease_owner = NULL, lease_expires = NULL \
             WHERE id = ? AND status IN ('FAILED', 'TIMEOUT', 'CANCELED') RETURNING *",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some(row) => {
                let run = run_summary(&row)?;
                let names = flow_names(&mut tx, std::slice::from_ref(&run.flow_id)).await?;
                let data = json!({"flowRun": {
                    "id": run.id, "flowId": run.flow_id, "flowVersionId": run.flow_version.to_string(),
                    "flowDisplayName": names.get(&run.flow_id), "environment": run.environment,
                    "status": run.status, "attempt": run.attempt + 1,
                }});
                let draft = AuditDraft::new(
                    &run.platform_id,
                    Some(&run.project_id),
                    actor,
                    "flow.run.retried",
                    data,
                );
                audit::append(&mut tx, &[draft]).await?;
                tx.commit().await?;
                Ok(run)
            }
            None => match self.get_run(id).await? {
                None => Err(StoreError::NotFound(format!("run {id}"))),
                Some(run) => Err(StoreError::Conflict(format!(
                    "run {id} is {}; only FAILED, TIMEOUT or CANCELED runs can be retried",
                    run.summary.status
                ))),
            },
        }
    }

    async fn get_run(&self, id: &str) -> StoreResult<Option<RunDetail>> {
        let Some(row) = sqlx::query("SELECT r.*, e.headers AS event_headers, e.body AS event_body FROM runs r JOIN events e ON e.id = r.event_id WHERE r.id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let summary = run_summary(&row)?;
        let headers: String = row.get("event_headers");
        let body: String = row.get("event_body");
        let trigger = serde_json::json!({
            "headers": serde_json::from_str::<Value>(&headers).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            "body": serde_json::from_str::<Value>(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        });
        let steps = sqlx::query("SELECT * FROM step_results WHERE run_id = ? ORDER BY seq")
            .bind(id)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(step_record)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(RunDetail {
            summary,
            trigger,
            steps,
        }))
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Page<RunSummary>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM runs WHERE 1 = 1");
        if let Some(flow_id) = &filter.flow_id {
            q.push(" AND flow_id = ").push_bind(flow_id.clone());
        }
        if let Some(status) = filter.status {
            q.push(" AND status = ").push_bind(status.as_str());
        }
        let backwards = push_cursor(&mut q, filter.cursor.as_ref(), filter.limit);
        let rows = q.build().fetch_all(&self.reader).await?;
        let items = rows
            .iter()
            .map(run_summary)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paginate(
            items,
            filter.limit,
            backwards,
            filter.cursor.is_some(),
            |r| r.id.clone(),
        ))
    }

    async fn put_secret(
        &self,
        actor: &Actor,
        scope: &Scope,
        name: &str,
        nonce: &str,
        ciphertext: &str,
    ) -> StoreResult<bool> {
        let now = now_text();
        let mut tx = self.writer.begin().await?;
        let existed = sqlx::query("SELECT 1 AS one FROM secrets WHERE project_id = ? AND name = ?")
            .bind(&scope.project_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO secrets (platform_id, project_id, name, nonce, ciphertext, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (project_id, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated = excluded.updated",
        )
        .bind(&scope.platform_id)
        .bind(&scope.project_id)
        .bind(name)
        .bind(nonce)
        .bind(ciphertext)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        let data = json!({"secret": {"name": name}});
        audit::append(
            &mut tx,
            &[AuditDraft::new(
                &scope.platform_id,
                Some(&scope.project_id),
                actor,
                "secret.upserted",
                data,
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(!existed)
    }

    async fn list_secrets(&self, scope: &Scope) -> StoreResult<Vec<SecretInfo>> {
        Ok(sqlx::query_as::<_, SecretInfo>(
            "SELECT name, created, updated FROM secrets WHERE project_id = ? ORDER BY name",
        )
        .bind(&scope.project_id)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn get_secrets(
        &self,
        scope: &Scope,
        names: &[String],
    ) -> StoreResult<Vec<(String, String, String)>> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT name, nonce, ciphertext FROM secrets WHERE project_id = ",
        );
        q.push_bind(scope.project_id.clone());
        q.push(" AND name IN (");
        push_list(&mut q, names);
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("name")?,
                    r.try_get("nonce")?,
                    r.try_get("ciphertext")?,
                ))
            })
            .collect()
    }

    async fn delete_secret(&self, actor: &Actor, scope: &Scope, name: &str) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("DELETE FROM secrets WHERE project_id = ? AND name = ?")
            .bind(&scope.project_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let data = json!({"secret": {"name": name}});
        audit::append(
            &mut tx,
            &[AuditDraft::new(
                &scope.platform_id,
                Some(&scope.project_id),
                actor,
                "secret.deleted",
                data,
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_audit(&self, drafts: Vec<AuditDraft>) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        audit::append(&mut tx, &drafts).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Page<Value>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT seq, body FROM audit_events WHERE 1 = 1");
        if !filter.actions.is_empty() {
            q.push(" AND action IN (");
            push_list(&mut q, &filter.actions);
        }
        if !filter.project_ids.is_empty() {
            q.push(" AND project_id IN (");
            push_list(&mut q, &filter.project_ids);
        }
        if let Some(user) = &filter.user_id {
            q.push(" AND user_id = ").push_bind(user.clone());
        }
        if let Some(after) = &filter.created_after {
            q.push(" AND created >= ").push_bind(after.clone());
        }
        if let Some(before) = &filter.created_before {
            q.push(" AND created < ").push_bind(before.clone());
        }
        let backwards = matches!(filter.cursor, Some(Cursor::Before(_)));
        let seq_of = |id: &str| {
            id.parse::<i64>()
                .map_err(|_| StoreError::Conflict("cursor: not a cursor this server issued".into()))
        };
        match &filter.cursor {
            Some(Cursor::After(id)) => {
                q.push(" AND seq < ").push_bind(seq_of(id)?);
            }
            Some(Cursor::Before(id)) => {
                q.push(" AND seq > ").push_bind(seq_of(id)?);
            }
            None => {}
        }
        q.push(if backwards {
            " ORDER BY seq ASC LIMIT "
        } else {
            " ORDER BY seq DESC LIMIT "
        });
        q.push_bind(i64::from(filter.limit) + 1);
        let rows = q.build().fetch_all(&self.reader).await?;
        let items = rows
            .iter()
            .map(|r| {
                let body: String = r.try_get("body")?;
                let mut event: Value =
                    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                event["seq"] = json!(r.try_get::<i64, _>("seq")?);
                Ok(event)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let mut page = paginate(
            items,
            filter.limit,
            backwards,
            filter.cursor.is_some(),
            |e| e["seq"].to_string(),
        );
        for event in &mut page.data {
            if let Value::Object(map) = event {
                map.remove("seq");
            }
        }
        Ok(page)
    }

    async fn expired_audit(
        &self,
        before: &str,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String, String)>> {
        let rows = sqlx::query(
            "SELECT seq, created, body FROM audit_events WHERE created < ? ORDER BY seq LIMIT ?",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("seq")?, r.try_get("created")?, r.try_get("body")?)))
            .collect()
    }

    async fn delete_audit_through(&self, seq: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM audit_events WHERE seq <= ?")
            .bind(seq)
            .execute(&self.writer)
            .await?
            .rows_affected())
    }

    async fn audit_chain(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRow>> {
        Ok(sqlx::query_as::<_, AuditRow>("SELECT seq, id, body, prev_hash, hash FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
        .await?)
    }

    async fn create_destination(
        &self,
        actor: &Actor,
        destination: &DestinationRecord,
    ) -> StoreResult<()> {
        sqlite_destinations::create(&self.writer, actor, destination).await
    }

    async fn update_destination(
        &self,
        actor: &Actor,
        destination: &DestinationRecord,
    ) -> StoreResult<()> {
        sqlite_destinations::update(&self.writer, actor, destination).await
    }

    async fn delete_destination(&self, actor: &Actor, id: &str) -> StoreResult<bool> {
        sqlite_destinations::delete(&self.writer, actor, id).await
    }

    async fn get_destination(&self, id: &str) -> StoreResult<Option<DestinationRecord>> {
        sqlite_destinations::get(&self.reader, id).await
    }

    async fn list_destinations(&self) -> StoreResult<Vec<DestinationRecord>> {
        sqlite_destinations::list(&self.reader).await
    }

    async fn claim_deliveries(&self, limit: u32, lease_ms: i64) -> StoreResult<Vec<DueDelivery>> {
        sqlite_destinations::claim(&self.writer, limit, 1, lease_ms).await
    }

    async fn finish_delivery(&self, result: &DeliveryResult) -> StoreResult<()> {
        sqlite_destinations::finish_batch(&self.writer, std::slice::from_ref(result), &[]).await
    }

    async fn claim_delivery_batches(
        &self,
        destinations: u32,
        per_destination: u32,
        lease_ms: i64,
    ) -> StoreResult<Vec<DueDelivery>> {
        sqlite_destinations::claim(&self.writer, destinations, per_destination, lease_ms).await
    }

    async fn finish_deliveries(
        &self,
        results: &[DeliveryResult],
        released: &[String],
    ) -> StoreResult<()> {
        sqlite_destinations::finish_batch(&self.writer, results, released).await
    }

    async fn list_deliveries(
        &self,
        destination_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        sqlite_destinations::deliveries(&self.reader, destination_id, limit).await
    }

    async fn redeliver(&self, destination_id: &str, selection: &Redelivery) -> StoreResult<u64> {
        sqlite_destinations::redeliver(&self.writer, destination_id, selection).await
    }

    async fn queue_depth(&self) -> StoreResult<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN status = 'QUEUED' THEN 1 ELSE 0 END), 0) AS queued, \
             COALESCE(SUM(CASE WHEN status = 'RUNNING' THEN 1 ELSE 0 END), 0) AS running FROM runs WHERE status IN ('QUEUED', 'RUNNING')",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok((row.get("queued"), row.get("running")))
    }

    async fn save_plugin(&self, plugin: &StoredPlugin, draft: AuditDraft) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO plugins (name, version, digest, component, installed) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (name, version) DO UPDATE SET digest = excluded.digest, \
             component = excluded.component, installed = excluded.installed",
        )
        .bind(&plugin.name)
        .bind(&plugin.version)
        .bind(&plugin.digest)
        .bind(&plugin.component)
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, &[draft]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn plugin_digests(&self) -> StoreResult<Vec<(String, String, String)>> {
        let rows = sqlx::query("SELECT name, version, digest FROM plugins ORDER BY name, version")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("name")?,
                    r.try_get("version")?,
                    r.try_get("digest")?,
                ))
            })
            .collect()
    }

    async fn get_plugin(&self, name: &str, version: &str) -> StoreResult<Option<StoredPlugin>> {
        Ok(sqlx::query_as::<_, StoredPlugin>(
            "SELECT name, version, digest, component FROM plugins WHERE name = ? AND version = ?",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&self.reader)
        .await?)
    }

    async fn remember_key(&self, flow_id: &str, key: &str, record: bool) -> StoreResult<bool> {
        if !record {
            let known = sqlx::query("SELECT 1 FROM flow_memory WHERE flow_id = ? AND key = ?")
                .bind(flow_id)
                .bind(key)
                .fetch_optional(&self.reader)
                .await?;
            return Ok(known.is_none());
        }
        let inserted = sqlx::query(
            "INSERT INTO flow_memory (flow_id, key, created) VALUES (?, ?, ?) \
             ON CONFLICT (flow_id, key) DO NOTHING",
        )
        .bind(flow_id)
        .bind(key)
        .bind(now_text())
        .execute(&self.writer)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }
}

/// The group-commit loop: take everything queued, write it in one transaction, answer everyone.
async fn write_loop(pool: SqlitePool, mut rx: mpsc::Receiver<Op>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut accepts = Vec::new();
        let mut finishes = Vec::new();
        let mut claims = Vec::new();
        for op in batch.drain(..) {
            match op {
                Op::Accept(event, reply) => accepts.push((event, reply)),
                Op::Finish(outcome, reply) => finishes.push((outcome, reply)),
                Op::Claim {
                    owner,
                    limit,
                    lease_ms,
                    reply,
                } => claims.push((owner, limit, lease_ms, reply)),
            }
        }
        let result = write_batch(&pool, &accepts, &finishes, &claims).await;
        match result {
            Ok((accepted, mut finished, claimed)) => {
                for ((_, _, _, reply), runs) in claims.into_iter().zip(claimed) {
                    let _ = reply.send(Ok(runs));
                }
                for ((_, reply), answer) in accepts.into_iter().zip(accepted) {
                    let _ = reply.send(Ok(answer));
                }
                // A run finished twice in one batch applied once: only the first request hears so.
                for (outcome, reply) in finishes {
                    let _ = reply.send(Ok(finished.remove(&outcome.run_id)));
                }
            }
            Err(error) => {
                let message = error.to_string();
                tracing::error!(%message, "group commit failed");
                for (_, reply) in accepts {
                    let _ = reply.send(Err(StoreError::Write(message.clone())));
                }
                for (_, reply) in finishes {
                    let _ = reply.send(Err(StoreError::Write(message.clone())));
                }
                for (_, _, _, reply) in claims {
                    let _ = reply.send(Err(StoreError::Write(message.clone())));
                }
            }
        }
    }
}

type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// Claims up to `limit` queued runs inside the group-commit transaction, with their events,
/// the steps of earlier attempts and a `flow.run.started` audit event each.
async fn claim_in(
    tx: &mut Transaction<'_, Sqlite>,
    owner: &str,
    limit: u32,
    lease_ms: i64,
) -> StoreResult<Vec<ClaimedRun>> {
    let rows = sqlx::query(
        "UPDATE runs SET status = 'RUNNING', lease_owner = ?, lease_expires = ?, started = COALESCE(started, ?), attempt = attempt + 1 \
         WHERE id IN (SELECT id FROM runs WHERE status = 'QUEUED' ORDER BY id LIMIT ?) \
         RETURNING id, platform_id, project_id, flow_id, flow_version, event_id, environment, attempt",
    )
    .bind(owner)
    .bind(epoch_ms() + lease_ms)
    .bind(now_text())
    .bind(i64::from(limit))
    .fetch_all(&mut **tx)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut events: HashMap<String, (String, String)> = HashMap::new();
    let event_ids: Vec<String> = rows
        .iter()
        .map(|r| r.get::<String, _>("event_id"))
        .collect();
    for chunk in event_ids.chunks(ROWS_PER_STATEMENT) {
        let mut q =
            QueryBuilder::<Sqlite>::new("SELECT id, headers, body FROM events WHERE id IN (");
        push_list(&mut q, chunk);
        for row in q.build().fetch_all(&mut **tx).await? {
            events.insert(row.get("id"), (row.get("headers"), row.get("body")));
        }
    }
    let retried: Vec<String> = rows
        .iter()
        .filter(|r| r.get::<i64, _>("attempt") > 1)
        .map(|r| r.get::<String, _>("id"))
        .collect();
    let mut prior: HashMap<String, Vec<StepRecord>> = HashMap::new();
    for chunk in retried.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM step_results WHERE run_id IN (");
        push_list(&mut q, chunk);
        q.push(" ORDER BY seq");
        for row in q.build().fetch_all(&mut **tx).await? {
            prior
                .entry(row.get("run_id"))
                .or_default()
                .push(step_record(&row)?);
        }
    }
    let flow_ids: Vec<String> = rows.iter().map(|r| r.get::<String, _>("flow_id")).collect();
    let names = flow_names(tx, &flow_ids).await?;
    let started = now_text();
    let drafts: Vec<AuditDraft> = rows
        .iter()
        .map(|r| {
            let flow_id: String = r.get("flow_id");
            audit::RunStarted {
                scope: &Scope {
                    platform_id: r.get("platform_id"),
                    project_id: r.get("project_id"),
                },
                run_id: r.get("id"),
                started: &started,
                environment: r.get("environment"),
                flow_id: &flow_id,
                flow_version: r.get("flow_version"),
                flow_name: names.get(&flow_id),
                attempt: r.get("attempt"),
            }
            .draft()
        })
        .collect();
    audit::append(tx, &drafts).await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.get("id");
        let event_id: String = row.get("event_id");
        let (headers, body) = events
            .remove(&event_id)
            .ok_or_else(|| StoreError::Corrupt(format!("run {id} has no event {event_id}")))?;
        claimed.push(ClaimedRun {
            scope: Scope {
                platform_id: row.get("platform_id"),
                project_id: row.get("project_id"),
            },
            flow_id: row.get("flow_id"),
            flow_version: row.get("flow_version"),
            environment: parse_enum(&row, "environment")?,
            attempt: row.get("attempt"),
            event_headers: serde_json::from_str(&headers)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            event_body: body,
            prior_steps: prior.remove(&id).unwrap_or_default(),
            id,
        });
    }
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

/// A claim request waiting in the batch.
type ClaimOp = (String, u32, i64, Reply<Vec<ClaimedRun>>);

async fn write_batch(
    pool: &SqlitePool,
    accepts: &[(NewEvent, Reply<Accepted>)],
    finishes: &[(RunOutcome, Reply<bool>)],
    claims: &[ClaimOp],
) -> StoreResult<(Vec<Accepted>, HashSet<String>, Vec<Vec<ClaimedRun>>)> {
    let mut tx = pool.begin().await?;
    let accepted = write_accepts(&mut tx, accepts).await?;
    let finished = write_finishes(&mut tx, finishes).await?;
    let mut claimed = Vec::with_capacity(claims.len());
    for (owner, limit, lease_ms, _) in claims {
        claimed.push(claim_in(&mut tx, owner, *limit, *lease_ms).await?);
    }
    tx.commit().await?;
    Ok((accepted, finished, claimed))
}

async fn write_accepts(
    tx: &mut Transaction<'_, Sqlite>,
    accepts: &[(NewEvent, Reply<Accepted>)],
) -> StoreResult<Vec<Accepted>> {
    if accepts.is_empty() {
        return Ok(Vec::new());
    }
    // The same event twice in one batch: only the first is inserted; the rest point at it.
    let mut first_with_key: HashMap<(&str, &str), usize> = HashMap::new();
    let mut same_as: Vec<Option<usize>> = vec![None; accepts.len()];
    let mut fresh: Vec<&NewEvent> = Vec::with_capacity(accepts.len());
    for (i, (event, _)) in accepts.iter().enumerate() {
        if let Some(key) = &event.event_key {
            if let Some(&first) = first_with_key.get(&(event.flow_id.as_str(), key.as_str())) {
                same_as[i] = Some(first);
                continue;
            }
            first_with_key.insert((event.flow_id.as_str(), key.as_str()), i);
        }
        fresh.push(event);
    }
    let received = now_text();
    let mut inserted: HashSet<String> = HashSet::with_capacity(fresh.len());
    for chunk in fresh.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (id, flow_id, event_key, run_id, headers, body, received) ",
        );
        q.push_values(chunk, |mut b, e| {
            b.push_bind(&e.event_id)
                .push_bind(&e.flow_id)
                .push_bind(&e.event_key)
                .push_bind(&e.run_id)
                .push_bind(e.headers.to_string())
                .push_bind(&e.body)
                .push_bind(&received);
        });
        q.push(" ON CONFLICT (flow_id, event_key) DO NOTHING RETURNING id");
        for row in q.build().fetch_all(&mut **tx).await? {
            inserted.insert(row.get("id"));
        }
    }
    let new_runs: Vec<&NewEvent> = fresh
        .iter()
        .copied()
        .filter(|e| inserted.contains(&e.event_id))
        .collect();
    let now_ms = epoch_ms();
    for chunk in new_runs.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO runs (id, platform_id, project_id, flow_id, flow_version, event_id, environment, status, attempt, created, started, lease_owner, lease_expires) ",
        );
        q.push_values(chunk, |mut b, e| {
            let lease = e.lease.as_ref();
            b.push_bind(&e.run_id)
                .push_bind(&e.scope.platform_id)
                .push_bind(&e.scope.project_id)
                .push_bind(&e.flow_id)
                .push_bind(e.flow_version)
                .push_bind(&e.event_id)
                .push_bind(e.environment.as_str())
                .push_bind(if lease.is_some() { "RUNNING" } else { "QUEUED" })
                .push_bind(i64::from(lease.is_some()))
                .push_bind(&received)
                .push_bind(lease.map(|_| &received))
                .push_bind(lease.map(|l| &l.owner))
                .push_bind(lease.map(|l| now_ms + l.lease_ms));
        });
        q.build().execute(&mut **tx).await?;
    }
    let started: Vec<&NewEvent> = new_runs
        .iter()
        .copied()
        .filter(|e| e.lease.is_some())
        .collect();
    if !started.is_empty() {
        let flow_ids: Vec<String> = started.iter().map(|e| e.flow_id.clone()).collect();
        let names = flow_names(tx, &flow_ids).await?;
        let drafts = audit::started_at_intake(&started, &received, &names);
        audit::append(tx, &drafts).await?;
    }
    let mut answers: Vec<Accepted> = Vec::with_capacity(accepts.len());
    for (i, (event, _)) in accepts.iter().enumerate() {
        let answer = if let Some(first) = same_as[i] {
            // `first` comes earlier, so its answer (new run, or an older duplicate) is known.
            let (Accepted::New { run_id } | Accepted::Duplicate { run_id }) = &answers[first];
            Accepted::Duplicate {
                run_id: run_id.clone(),
            }
        } else if inserted.contains(&event.event_id) {
            Accepted::New {
                run_id: event.run_id.clone(),
            }
        } else {
            let row = sqlx::query("SELECT run_id FROM events WHERE flow_id = ? AND event_key = ?")
                .bind(&event.flow_id)
                .bind(&event.event_key)
                .fetch_one(&mut **tx)
                .await?;
            Accepted::Duplicate {
                run_id: row.get("run_id"),
            }
        };
        answers.push(answer);
    }
    Ok(answers)
}

async fn write_finishes(
    tx: &mut Transaction<'_, Sqlite>,
    finishes: &[(RunOutcome, Reply<bool>)],
) -> StoreResult<HashSet<String>> {
    let mut finished = HashSet::new();
    if finishes.is_empty() {
        return Ok(finished);
    }
    let mut finished_rows = Vec::new();
    let now = now_text();
    for chunk in finishes.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "UPDATE runs SET status = v.column3, error = v.column4, duration_ms = v.column5, finished = v.column6, \
             lease_owner = NULL, lease_expires = NULL FROM (",
        );
        q.push_values(chunk, |mut b, (o, _)| {
            b.push_bind(&o.run_id)
                .push_bind(&o.owner)
                .push_bind(o.status.as_str())
                .push_bind(&o.error)
                .push_bind(o.duration_ms)
                .push_bind(&now);
        });
        q.push(
            ") AS v WHERE runs.id = v.column1 AND runs.lease_owner = v.column2 AND runs.status = 'RUNNING' \
             RETURNING runs.id, runs.platform_id, runs.project_id, runs.flow_id, runs.flow_version, runs.environment, \
             runs.status, runs.started, runs.finished, runs.duration_ms, runs.error",
        );
        for row in q.build().fetch_all(&mut **tx).await? {
            finished.insert(row.get::<String, _>("id"));
            finished_rows.push(row);
        }
    }
    let flow_ids: Vec<String> = finished_rows
        .iter()
        .map(|r| r.get::<String, _>("flow_id"))
        .collect();
    let names = flow_names(tx, &flow_ids).await?;
    let drafts: Vec<AuditDraft> = finished_rows
        .iter()
        .map(|r| {
            let flow_id: String = r.get("flow_id");
            let data = json!({"flowRun": {
                "id": r.get::<String, _>("id"),
                "startTime": r.get::<Option<String>, _>("started"),
                "finishTime": r.get::<Option<String>, _>("finished"),
                "duration": r.get::<Option<f64>, _>("duration_ms").map(|d| d.round() as i64),
                "environment": r.get::<String, _>("environment"),
                "flowId": flow_id,
                "flowVersionId": r.get::<i64, _>("flow_version").to_string(),
                "flowDisplayName": names.get(&flow_id),
                "status": r.get::<String, _>("status"),
                "error": r.get::<Option<String>, _>("error"),
            }});
            let platform: String = r.get("platform_id");
            let project: String = r.get("project_id");
            AuditDraft::new(
                &platform,
                Some(&project),
                &Actor::system(),
                "flow.run.finished",
                data,
            )
        })
        .collect();
    audit::append(tx, &drafts).await?;
    let steps: Vec<(&str, &StepRecord)> = finishes
        .iter()
        .filter(|(o, _)| finished.contains(&o.run_id))
        .flat_map(|(o, _)| o.steps.iter().map(move |s| (o.run_id.as_str(), s)))
        .collect();
    upsert_steps(tx, &steps).await?;
    Ok(finished)
}

/// Writes step results, replacing earlier rows of the same steps (a retried run).
async fn upsert_steps(
    tx: &mut Transaction<'_, Sqlite>,
    steps: &[(&str, &StepRecord)],
) -> StoreResult<()> {
    for chunk in steps.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO step_results (run_id, name, seq, kind, status, input, output, error, attempts, duration_ms, detail) ",
        );
        q.push_values(chunk, |mut b, (run_id, s)| {
            b.push_bind(*run_id)
                .push_bind(&s.name)
                .push_bind(s.seq)
                .push_bind(s.kind.as_str())
                .push_bind(s.status.as_str())
                .push_bind(s.input.as_ref().map(Value::to_string))
                .push_bind(s.output.as_ref().map(Value::to_string))
                .push_bind(&s.error)
                .push_bind(s.attempts)
                .push_bind(s.duration_ms)
                .push_bind(s.detail.as_ref().map(Value::to_string));
        });
        q.push(
            " ON CONFLICT (run_id, name) DO UPDATE SET seq = excluded.seq, kind = excluded.kind, status = excluded.status, \
             input = excluded.input, output = excluded.output, error = excluded.error, attempts = excluded.attempts, \
             duration_ms = excluded.duration_ms, detail = excluded.detail",
        );
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Display names of flows by id (deleted flows included: runs outlive them).
async fn flow_names(
    tx: &mut Transaction<'_, Sqlite>,
    ids: &[String],
) -> StoreResult<HashMap<String, String>> {
    let mut names = HashMap::new();
    let mut unique: Vec<String> = ids.to_vec();
    unique.sort();
    unique.dedup();
    for chunk in unique.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT id, name FROM flows WHERE id IN (");
        push_list(&mut q, chunk);
        for row in q.build().fetch_all(&mut **tx).await? {
            names.insert(row.try_get("id")?, row.try_get("name")?);
        }
    }
    Ok(names)
}

async fn insert_version(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    version: i64,
    text: &str,
    now: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO flow_versions (flow_id, version, definition, created) VALUES (?, ?, ?, ?)",
    )
    .bind(id)
    .bind(version)
    .bind(text)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Adds the cursor condition, newest-first order and limit (+1 to see whether more exist).
/// Returns true when the page is fetched backwards (oldest first) and must be reversed.
fn push_cursor(q: &mut QueryBuilder<'_, Sqlite>, cursor: Option<&Cursor>, limit: u32) -> bool {
    let backwards = matches!(cursor, Some(Cursor::Before(_)));
    match cursor {
        Some(Cursor::After(id)) => {
            q.push(" AND id < ").push_bind(id.clone());
        }
        Some(Cursor::Before(id)) => {
            q.push(" AND id > ").push_bind(id.clone());
        }
        None => {}
    }
    q.push(if backwards {
        " ORDER BY id ASC LIMIT "
    } else {
        " ORDER BY id DESC LIMIT "
    });
    q.push_bind(i64::from(limit) + 1);
    backwards
}

fn push_list(q: &mut QueryBuilder<'_, Sqlite>, ids: &[String]) {
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(id.clone());
    }
    q.push(")");
}

fn epoch_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn parse_enum<T: FromStr<Err = String>>(row: &SqliteRow, column: &str) -> StoreResult<T> {
    row.get::<String, _>(column)
        .parse()
        .map_err(StoreError::Corrupt)
}

fn parse_json(text: Option<String>) -> StoreResult<Option<Value>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

fn flow_record(row: &SqliteRow) -> StoreResult<FlowRecord> {
    let definition: String = row.try_get("definition")?;
    Ok(FlowRecord {
        id: row.try_get("id")?,
        platform_id: row.try_get("platform_id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        definition: serde_json::from_str(&definition)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created: row.try_get("created")?,
        updated: row.try_get("updated")?,
    })
}

fn run_summary(row: &SqliteRow) -> StoreResult<RunSummary> {
    Ok(RunSummary {
        id: row.try_get("id")?,
        platform_id: row.try_get("platform_id")?,
        project_id: row.try_get("project_id")?,
        flow_id: row.try_get("flow_id")?,
        flow_version: row.try_get("flow_version")?,
        event_id: row.try_get("event_id")?,
        environment: parse_enum(row, "environment")?,
        status: parse_enum(row, "status")?,
        attempt: row.try_get("attempt")?,
        created: row.try_get("created")?,
        started: row.try_get("started")?,
        finished: row.try_get("finished")?,
        duration_ms: row.try_get("duration_ms")?,
        error: row.try_get("error")?,
    })
}

fn step_record(row: &SqliteRow) -> StoreResult<StepRecord> {
    Ok(StepRecord {
        name: row.try_get("name")?,
        seq: row.try_get("seq")?,
        kind: parse_enum(row, "kind")?,
        status: parse_enum(row, "status")?,
        input: parse_json(row.try_get("input")?)?,
        output: parse_json(row.try_get("output")?)?,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        duration_ms: row.try_get("duration_ms")?,
        detail: parse_json(row.try_get("detail")?)?,
    })
}
