//! The run queue on PostgreSQL, shared by several processes: claims, leases, expiry, retry,
//! and reading runs back.
//!
//! Every statement that locks more than one run row either skips locked rows (`SKIP LOCKED`:
//! claims, expiry) or locks them in id order first (`ORDER BY id FOR UPDATE`: renewal, release,
//! finishing), so two transactions never wait on each other's rows in opposite orders.

use super::audit;
use super::listen::notify_runs;
use super::rows::{cursor_key, json, paginate, parse_enum, push_cursor, run_summary, step_record};
use crate::store::{
    Actor, AuditDraft, ClaimedRun, NewEvent, Page, RunDetail, RunFilter, RunOutcome, RunSummary,
    Scope, StepRecord, StoreError, StoreResult, now_text,
};
use serde_json::{Value, json};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};
use std::collections::HashMap;

/// Epoch milliseconds, the unit of lease expiry times.
pub fn epoch_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Claims up to `limit` queued runs, oldest first, for `owner`. `SKIP LOCKED` lets processes claim
/// concurrently: a row another transaction is claiming is passed over, never handed out twice.
/// Each claim writes a `flow.run.started` audit event in the same transaction.
pub async fn claim(
    pool: &PgPool,
    owner: &str,
    limit: u32,
    lease_ms: i64,
) -> StoreResult<Vec<ClaimedRun>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "UPDATE runs SET status = 'RUNNING', lease_owner = $1, lease_expires = $2, \
         started = COALESCE(started, $3), attempt = attempt + 1 \
         WHERE id IN (SELECT id FROM runs WHERE status = 'QUEUED' ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING id, platform_id, project_id, flow_id, flow_version, event_id, environment, attempt",
    )
    .bind(owner)
    .bind(epoch_ms() + lease_ms)
    .bind(now_text())
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let event_ids: Vec<String> = column(&rows, "event_id")?;
    let mut events: HashMap<String, (String, String)> = HashMap::new();
    for row in sqlx::query("SELECT id, headers, body FROM events WHERE id = ANY($1)")
        .bind(&event_ids)
        .fetch_all(&mut *tx)
        .await?
    {
        events.insert(
            row.try_get("id")?,
            (row.try_get("headers")?, row.try_get("body")?),
        );
    }
    let retried: Vec<String> = rows
        .iter()
        .filter(|r| r.try_get::<i64, _>("attempt").is_ok_and(|a| a > 1))
        .map(|r| r.try_get::<String, _>("id"))
        .collect::<Result<_, _>>()?;
    let mut prior: HashMap<String, Vec<StepRecord>> = HashMap::new();
    if !retried.is_empty() {
        for row in sqlx::query("SELECT * FROM step_results WHERE run_id = ANY($1) ORDER BY seq")
            .bind(&retried)
            .fetch_all(&mut *tx)
            .await?
        {
            prior
                .entry(row.try_get("run_id")?)
                .or_default()
                .push(step_record(&row)?);
        }
    }
    let names = flow_names(&mut tx, &column(&rows, "flow_id")?).await?;
    let started = now_text();
    let mut drafts = Vec::with_capacity(rows.len());
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get("id")?;
        let flow_id: String = row.try_get("flow_id")?;
        let flow_version: i64 = row.try_get("flow_version")?;
        let attempt: i64 = row.try_get("attempt")?;
        let environment: String = row.try_get("environment")?;
        let scope = Scope {
            platform_id: row.try_get("platform_id")?,
            project_id: row.try_get("project_id")?,
        };
        drafts.push(
            crate::store::audit::RunStarted {
                scope: &scope,
                run_id: &id,
                started: &started,
                environment: &environment,
                flow_id: &flow_id,
                flow_version,
                flow_name: names.get(&flow_id),
                attempt,
            }
            .draft(),
        );
        let event_id: String = row.try_get("event_id")?;
        let (headers, body) = events
            .remove(&event_id)
            .ok_or_else(|| StoreError::Corrupt(format!("run {id} has no event {event_id}")))?;
        claimed.push(ClaimedRun {
            scope,
            flow_id,
            flow_version,
            environment: parse_enum(row, "environment")?,
            attempt,
            event_headers: json(&headers)?,
            event_body: body,
            prior_steps: prior.remove(&id).unwrap_or_default(),
            id,
        });
    }
    audit::append(&mut tx, &drafts).await?;
    tx.commit().await?;
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

/// Extends the leases `owner` holds.
pub async fn renew(pool: &PgPool, owner: &str, lease_ms: i64) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE runs SET lease_expires = $1 WHERE id IN \
         (SELECT id FROM runs WHERE lease_owner = $2 AND status = 'RUNNING' ORDER BY id FOR UPDATE) \
         AND lease_owner = $2 AND status = 'RUNNING'",
    )
    .bind(epoch_ms() + lease_ms)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Re-queues runs whose lease expired. Safe to run from every process at once: a row another
/// sweeper (or the finishing owner) has locked is skipped, and the expiry condition is checked
/// again on the locked row, so each expired run is re-queued once.
pub async fn requeue_expired(pool: &PgPool) -> StoreResult<u64> {
    requeue_where(
        pool,
        "SELECT id FROM runs WHERE status = 'RUNNING' AND lease_expires < $1 FOR UPDATE SKIP LOCKED",
        |q| q.bind(epoch_ms()),
    )
    .await
}

/// Hands `owner`'s runs back to the queue (graceful shutdown).
pub async fn release(pool: &PgPool, owner: &str) -> StoreResult<u64> {
    let owner = owner.to_string();
    requeue_where(
        pool,
        "SELECT id FROM runs WHERE lease_owner = $1 AND status = 'RUNNING' ORDER BY id FOR UPDATE",
        |q| q.bind(owner),
    )
    .await
}

/// Re-queues every RUNNING run, whoever holds it. On PostgreSQL this is only correct when no
/// other process can be running these runs (a single-server deployment after a crash, or with
/// every server stopped): it takes the runs away from live leaseholders, whose finishes are
/// then ignored and whose runs execute a second time. Multi-process deployments rely on
/// [`requeue_expired`] instead.
pub async fn requeue_all_running(pool: &PgPool) -> StoreResult<u64> {
    requeue_where(
        pool,
        "SELECT id FROM runs WHERE status = 'RUNNING' ORDER BY id FOR UPDATE",
        |q| q,
    )
    .await
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Puts the runs `select` picks (and locks) back in the queue and notifies listeners.
async fn requeue_where(
    pool: &PgPool,
    select: &str,
    bind: impl for<'q> FnOnce(PgQuery<'q>) -> PgQuery<'q>,
) -> StoreResult<u64> {
    let sql = format!(
        "UPDATE runs SET status = 'QUEUED', lease_owner = NULL, lease_expires = NULL \
         WHERE id IN ({select})"
    );
    let mut tx = pool.begin().await?;
    let done = bind(sqlx::query(&sql)).execute(&mut *tx).await?;
    if done.rows_affected() > 0 {
        notify_runs(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Queues a terminal (not succeeded) run again, keeping its step results.
pub async fn retry(pool: &PgPool, actor: &Actor, id: &str) -> StoreResult<RunSummary> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "UPDATE runs SET status = 'QUEUED', finished = NULL, error = NULL, duration_ms = NULL, \
         lease_owner = NULL, lease_expires = NULL \
         WHERE id = $1 AND status IN ('FAILED', 'TIMEOUT', 'CANCELED') RETURNING *",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        drop(tx);
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
        return Err(match status {
            None => StoreError::NotFound(format!("run {id}")),
            Some(status) => StoreError::Conflict(format!(
                "run {id} is {status}; only FAILED, TIMEOUT or CANCELED runs can be retried"
            )),
        });
    };
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
    notify_runs(&mut tx).await?;
    audit::append(&mut tx, &[draft]).await?;
    tx.commit().await?;
    Ok(run)
}

/// Stores a run that executed outside the queue (a test run), its event and its steps.
pub async fn record_finished(
    pool: &PgPool,
    event: &NewEvent,
    outcome: &RunOutcome,
) -> StoreResult<()> {
    let now = now_text();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO events (id, flow_id, event_key, run_id, headers, body, received) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
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
        "INSERT INTO runs (id, platform_id, project_id, flow_id, flow_version, event_id, environment, status, \
         attempt, created, started, finished, duration_ms, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9, $9, $10, $11)",
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

pub async fn get(pool: &PgPool, id: &str) -> StoreResult<Option<RunDetail>> {
    let Some(row) = sqlx::query(
        "SELECT r.*, e.headers AS event_headers, e.body AS event_body \
         FROM runs r JOIN events e ON e.id = r.event_id WHERE r.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let summary = run_summary(&row)?;
    let headers: String = row.try_get("event_headers")?;
    let body: String = row.try_get("event_body")?;
    let trigger = json!({"headers": json(&headers)?, "body": json(&body)?});
    let steps = sqlx::query("SELECT * FROM step_results WHERE run_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(pool)
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

pub async fn list(pool: &PgPool, filter: &RunFilter) -> StoreResult<Page<RunSummary>> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT * FROM runs WHERE TRUE");
    if let Some(flow_id) = &filter.flow_id {
        q.push(" AND flow_id = ").push_bind(flow_id.clone());
    }
    if let Some(status) = filter.status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
    let key = filter
        .cursor
        .as_ref()
        .map(|c| (c, cursor_key(c).to_string()));
    let backwards = push_cursor(&mut q, "id", key, filter.limit);
    let rows = q.build().fetch_all(pool).await?;
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

/// `(queued, running)` run counts.
pub async fn queue_depth(pool: &PgPool) -> StoreResult<(i64, i64)> {
    let row = sqlx::query(
        "SELECT COUNT(*) FILTER (WHERE status = 'QUEUED') AS queued, \
         COUNT(*) FILTER (WHERE status = 'RUNNING') AS running \
         FROM runs WHERE status IN ('QUEUED', 'RUNNING')",
    )
    .fetch_one(pool)
    .await?;
    Ok((row.try_get("queued")?, row.try_get("running")?))
}

/// Writes step results, replacing earlier rows of the same steps (a retried run). Rows are bound
/// as arrays, so one statement writes any number of steps.
pub async fn upsert_steps(
    tx: &mut Transaction<'_, Postgres>,
    steps: &[(&str, &StepRecord)],
) -> StoreResult<()> {
    if steps.is_empty() {
        return Ok(());
    }
    // One statement may not upsert a row twice: keep the last record of a repeated step.
    let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(steps.len());
    for (i, (run_id, step)) in steps.iter().enumerate() {
        last.insert((run_id, step.name.as_str()), i);
    }
    let mut cols = StepColumns::default();
    for (i, (run_id, s)) in steps.iter().enumerate() {
        if last.get(&(*run_id, s.name.as_str())) != Some(&i) {
            continue;
        }
        cols.run_id.push(run_id.to_string());
        cols.name.push(s.name.clone());
        cols.seq.push(s.seq);
        cols.kind.push(s.kind.as_str().to_string());
        cols.status.push(s.status.as_str().to_string());
        cols.input.push(s.input.as_ref().map(Value::to_string));
        cols.output.push(s.output.as_ref().map(Value::to_string));
        cols.error.push(s.error.clone());
        cols.attempts.push(s.attempts);
        cols.duration_ms.push(s.duration_ms);
        cols.detail.push(s.detail.as_ref().map(Value::to_string));
    }
    sqlx::query(
        "INSERT INTO step_results (run_id, name, seq, kind, status, input, output, error, attempts, duration_ms, detail) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], \
         $8::text[], $9::bigint[], $10::float8[], $11::text[]) \
         ON CONFLICT (run_id, name) DO UPDATE SET seq = excluded.seq, kind = excluded.kind, status = excluded.status, \
         input = excluded.input, output = excluded.output, error = excluded.error, attempts = excluded.attempts, \
         duration_ms = excluded.duration_ms, detail = excluded.detail",
    )
    .bind(&cols.run_id)
    .bind(&cols.name)
    .bind(&cols.seq)
    .bind(&cols.kind)
    .bind(&cols.status)
    .bind(&cols.input)
    .bind(&cols.output)
    .bind(&cols.error)
    .bind(&cols.attempts)
    .bind(&cols.duration_ms)
    .bind(&cols.detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Column vectors of step rows, bound as arrays.
#[derive(Default)]
struct StepColumns {
    run_id: Vec<String>,
    name: Vec<String>,
    seq: Vec<i64>,
    kind: Vec<String>,
    status: Vec<String>,
    input: Vec<Option<String>>,
    output: Vec<Option<String>>,
    error: Vec<Option<String>>,
    attempts: Vec<i64>,
    duration_ms: Vec<f64>,
    detail: Vec<Option<String>>,
}

/// Display names of flows by id (deleted flows included: runs outlive them).
pub async fn flow_names(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[String],
) -> StoreResult<HashMap<String, String>> {
    let mut unique: Vec<&String> = ids.iter().collect();
    unique.sort();
    unique.dedup();
    let mut names = HashMap::with_capacity(unique.len());
    for row in sqlx::query("SELECT id, name FROM flows WHERE id = ANY($1)")
        .bind(unique)
        .fetch_all(&mut **tx)
        .await?
    {
        names.insert(row.try_get("id")?, row.try_get("name")?);
    }
    Ok(names)
}

/// One text column of every row.
pub fn column(rows: &[PgRow], name: &str) -> StoreResult<Vec<String>> {
    rows.iter()
        .map(|r| r.try_get::<String, _>(name).map_err(StoreError::from))
        .collect()
}
