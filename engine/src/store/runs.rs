//! The run queue: claims, leases, expiry, retry, and reading runs back. Written once; the
//! hot-path writes (accepting events, finishing and claiming runs) are group-committed by
//! [`super::batch`].
//!
//! Every statement that locks more than one run row either skips locked rows
//! ([`Dialect::skip_locked`](super::sql::Dialect::skip_locked): claims, expiry) or, where rows
//! must be locked explicitly, locks them in id order first (renewal, release, finishing), so two
//! transactions never wait on each other's rows in opposite orders. On SQLite the one writer
//! makes all of this moot.

use super::audit::{self, AuditDraft, RunStarted};
use super::rows::{
    in_list, lock_in_order, paginate, push_created_range, push_cursor, run_summary, step_record,
};
use super::sql::{CHUNK, Col, Conn, Param, Ty, params};
use super::{
    Actor, AuditAction, ClaimedRun, NewEvent, Page, RunDetail, RunFilter, RunOutcome, RunSummary,
    Scope, StepRecord, StoreError, StoreResult, epoch_ms, now_text,
};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The channel run-queueing transactions notify, so idle processes claim at once.
pub const RUNS_CHANNEL: &str = "hookflow_runs";

/// How many ranked candidates a claim considers per run it may take. On PostgreSQL concurrent
/// claimers rank the same runs; the ones another claimer has locked are skipped, and the spare
/// candidates let this claim still fill its slots instead of coming back short.
const CLAIM_CANDIDATES: u32 = 4;

/// Claims up to `limit` queued runs that are due for `owner`, with their events, the steps of
/// earlier attempts, and the `flow.run.started` audit events to append. Concurrent claimers pass
/// over each other's rows, so a run is never handed out twice.
///
/// Fair share per flow: each queued run is ranked within its flow, after the flow's running
/// runs (in every process): a flow with two runs executing ranks its oldest queued run 3, the
/// next 4, ... Runs are taken by rank, then oldest first. A flow with a thousand queued runs
/// and a flow with one therefore get a slot each before the flood gets a second one, and a flood
/// already holding slots waits behind a flow holding none; with a single flow queued this is
/// plain oldest first. A run whose `not_before` is still in the
/// future (a retry waiting out its backoff, see [`defer`]) is not due and not claimed.
///
/// A run claimed back after a deferral (its `not_before` is set) continues the same execution:
/// its `attempt` stays, no second `flow.run.started` is recorded, and its steps so far come back
/// as `prior_steps` so the failed step goes on counting its attempts.
pub async fn claim(
    c: &mut dyn Conn,
    owner: &str,
    limit: u32,
    lease_ms: i64,
) -> StoreResult<(Vec<ClaimedRun>, Vec<AuditDraft>)> {
    if limit == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    // The event and the flow's name come back with the claimed rows: one statement, no
    // follow-up reads.
    // The ranking reads no locks (PostgreSQL refuses FOR UPDATE beside a window function); the
    // chosen rows are locked one level up, skipping those another claimer holds, and checked
    // to be still QUEUED once locked.
    let sql = format!(
        "UPDATE runs SET status = 'RUNNING', lease_owner = ?, lease_expires = ?, \
         started = COALESCE(started, ?), \
         attempt = attempt + CASE WHEN not_before IS NULL THEN 1 ELSE 0 END \
         WHERE id IN (SELECT q.id FROM runs q JOIN (\
           SELECT id, share FROM (\
             SELECT id, status, ROW_NUMBER() OVER (PARTITION BY flow_id \
               ORDER BY CASE WHEN status = 'RUNNING' THEN 0 ELSE 1 END, id) AS share FROM runs \
             WHERE status = 'RUNNING' OR (status = 'QUEUED' AND (not_before IS NULL OR not_before <= ?))\
           ) ranked WHERE status = 'QUEUED' ORDER BY share, id LIMIT ?\
         ) c ON c.id = q.id WHERE q.status = 'QUEUED' ORDER BY c.share, q.id LIMIT ?{}) \
         RETURNING id, platform_id, project_id, flow_id, flow_version, event_id, environment, attempt, not_before, \
         (SELECT name FROM flows f WHERE f.id = runs.flow_id) AS flow_name, \
         (SELECT headers FROM events e WHERE e.id = runs.event_id) AS event_headers, \
         (SELECT body FROM events e WHERE e.id = runs.event_id) AS event_body",
        c.dialect().skip_locked_of("q")
    );
    let now_ms = epoch_ms();
    let rows = c
        .query(
            &sql,
            params![
                owner,
                now_ms + lease_ms,
                now_text(),
                now_ms,
                limit.saturating_mul(CLAIM_CANDIDATES),
                limit
            ],
        )
        .await?;
    if rows.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut retried = Vec::new();
    for row in &rows {
        if row.int("attempt")? > 1 || row.opt_int("not_before")?.is_some() {
            retried.push(row.text("id")?);
        }
    }
    let mut prior: HashMap<String, Vec<StepRecord>> = HashMap::new();
    for chunk in retried.chunks(CHUNK) {
        let (cond, args) = in_list("run_id", chunk);
        for row in c
            .query(
                &format!("SELECT * FROM step_results WHERE {cond} ORDER BY seq"),
                args,
            )
            .await?
        {
            prior
                .entry(row.text("run_id")?)
                .or_default()
                .push(step_record(&row)?);
        }
    }
    let started = now_text();
    let mut drafts = Vec::with_capacity(rows.len());
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let id = row.text("id")?;
        let flow_id = row.text("flow_id")?;
        let flow_version = row.int("flow_version")?;
        let attempt = row.int("attempt")?;
        let environment = row.text("environment")?;
        let flow_name = row.opt_text("flow_name")?;
        let scope = Scope {
            platform_id: row.text("platform_id")?,
            project_id: row.text("project_id")?,
        };
        // A deferred run coming back: its execution already started (and said so).
        let resumed = row.opt_int("not_before")?.is_some();
        if !resumed {
            drafts.push(
                RunStarted {
                    scope: &scope,
                    run_id: &id,
                    started: &started,
                    environment: &environment,
                    flow_id: &flow_id,
                    flow_version,
                    flow_name: flow_name.as_ref(),
                    attempt,
                }
                .draft(),
            );
        }
        let event_id = row.text("event_id")?;
        let missing = || StoreError::Corrupt(format!("run {id} has no event {event_id}"));
        let headers = row.opt_text("event_headers")?.ok_or_else(missing)?;
        let body = row.opt_text("event_body")?.ok_or_else(missing)?;
        claimed.push(ClaimedRun {
            scope,
            flow_id,
            flow_version,
            environment: row.parse("environment")?,
            attempt,
            event_headers: serde_json::from_str(&headers)
                .map_err(|e| StoreError::Corrupt(format!("event headers: {e}")))?,
            event_body: body,
            prior_steps: prior.remove(&id).unwrap_or_default(),
            id,
        });
    }
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((claimed, drafts))
}

/// Extends the leases `owner` holds on `run_ids` (the runs it is executing). A run the owner
/// holds but no longer executes (its task was lost) is not renewed: its lease expires and the
/// sweeper re-queues it.
pub async fn renew(
    c: &mut dyn Conn,
    owner: &str,
    run_ids: &[String],
    lease_ms: i64,
) -> StoreResult<u64> {
    let mut ids = run_ids.to_vec();
    ids.sort();
    ids.dedup();
    lock_in_order(c, "runs", &ids).await?;
    let expires = epoch_ms() + lease_ms;
    let mut renewed = 0;
    for chunk in ids.chunks(CHUNK) {
        let (cond, ids) = in_list("id", chunk);
        let mut args = params![expires, owner];
        args.extend(ids);
        renewed += c
            .execute(
                &format!(
                    "UPDATE runs SET lease_expires = ? WHERE lease_owner = ? AND status = 'RUNNING' AND {cond}"
                ),
                args,
            )
            .await?;
    }
    Ok(renewed)
}

/// Puts a run `owner` is executing back in the queue until `not_before` (ms since the epoch): a
/// step failed retryably and its backoff is long, so the run gives its worker slot back instead
/// of sleeping in it. The steps so far are stored as a finished attempt's would be (a manual
/// retry keeps them the same way), so when the run is claimed again ([`claim`]) its succeeded
/// steps are reused and the failed step goes on counting attempts. No audit event: the run's
/// execution goes on, and it ends with one `flow.run.finished`. Returns false when `owner` no
/// longer held the lease (nothing is written).
pub async fn defer(c: &mut dyn Conn, outcome: &RunOutcome, not_before: i64) -> StoreResult<bool> {
    let done = c
        .execute(
            "UPDATE runs SET status = 'QUEUED', not_before = ?, lease_owner = NULL, lease_expires = NULL \
             WHERE id = ? AND lease_owner = ? AND status = 'RUNNING'",
            params![not_before, &outcome.run_id, &outcome.owner],
        )
        .await?;
    if done == 0 {
        return Ok(false);
    }
    let steps: Vec<(&str, &StepRecord)> = outcome
        .steps
        .iter()
        .map(|s| (outcome.run_id.as_str(), s))
        .collect();
    upsert_steps(c, &steps).await?;
    Ok(true)
}

/// Locks `owner`'s running rows in id order, where rows are locked explicitly.
async fn lock_held(c: &mut dyn Conn, owner: &str) -> StoreResult<()> {
    if c.dialect().locks_rows() {
        c.query(
            "SELECT id FROM runs WHERE lease_owner = ? AND status = 'RUNNING' ORDER BY id FOR UPDATE",
            params![owner],
        )
        .await?;
    }
    Ok(())
}

/// Re-queues runs whose lease expired. Safe to run from every process at once: a row another
/// sweeper (or the finishing owner) has locked is skipped, and the expiry condition is checked
/// again on the locked row, so each expired run is re-queued once.
pub async fn requeue_expired(c: &mut dyn Conn) -> StoreResult<u64> {
    let lost = format!(
        "id IN (SELECT id FROM runs WHERE status = 'RUNNING' AND lease_expires < ?{}) \
         AND status = 'RUNNING' AND lease_expires < ?",
        c.dialect().skip_locked()
    );
    let now = epoch_ms();
    recover(c, &lost, params![now, now]).await
}

/// How often a run is taken back from a process that died running it; the next time it is
/// FAILED as abandoned instead, so a run that kills its server is not re-run at every start.
pub const MAX_RECOVERIES: i64 = 2;

/// Re-queues the runs matching `lost` (RUNNING under a dead owner), or FAILS those already
/// recovered [`MAX_RECOVERIES`] times, with their `flow.run.finished` event.
async fn recover(c: &mut dyn Conn, lost: &str, args: Vec<Param>) -> StoreResult<u64> {
    let error = format!(
        "abandoned after {} attempts: the process running it stopped each time",
        MAX_RECOVERIES + 1
    );
    let mut abandon_args = params![&error, now_text()];
    abandon_args.extend(args.iter().cloned());
    abandon_args.push(Param::from(MAX_RECOVERIES));
    let abandoned = c
        .query(
            &format!(
                "UPDATE runs SET status = 'FAILED', error = ?, finished = ?, lease_owner = NULL, \
                 lease_expires = NULL, not_before = NULL WHERE {lost} AND recoveries >= ? \
                 RETURNING *, (SELECT name FROM flows f WHERE f.id = runs.flow_id) AS flow_name"
            ),
            abandon_args,
        )
        .await?;
    let mut drafts = Vec::with_capacity(abandoned.len());
    for row in &abandoned {
        drafts.push(finished_draft(
            &run_summary(row)?,
            row.opt_text("flow_name")?,
        ));
    }
    audit::append(c, &drafts).await?;
    let done = c
        .execute(
            &format!(
                "UPDATE runs SET status = 'QUEUED', recoveries = recoveries + 1, lease_owner = NULL, \
                 lease_expires = NULL, not_before = NULL WHERE {lost}"
            ),
            args,
        )
        .await?;
    requeued(c, done).await
}

/// The `flow.run.finished` audit event of a run that just ended, in Activepieces' shape.
pub(super) fn finished_draft(run: &RunSummary, flow_name: Option<String>) -> AuditDraft {
    let data = json!({"flowRun": {
        "id": run.id,
        "startTime": run.started,
        "finishTime": run.finished,
        "duration": run.duration_ms.map(|d| d.round() as i64),
        "environment": run.environment,
        "flowId": run.flow_id,
        "flowVersionId": run.flow_version.to_string(),
        "flowDisplayName": flow_name,
        "status": run.status,
        "error": run.error,
    }});
    AuditDraft::new(
        &run.platform_id,
        Some(&run.project_id),
        &Actor::system(),
        AuditAction::FlowRunFinished,
        data,
    )
}

/// Hands `owner`'s runs back to the queue (graceful shutdown).
pub async fn release(c: &mut dyn Conn, owner: &str) -> StoreResult<u64> {
    lock_held(c, owner).await?;
    let done = c
        .execute(
            "UPDATE runs SET status = 'QUEUED', lease_owner = NULL, lease_expires = NULL, not_before = NULL \
             WHERE lease_owner = ? AND status = 'RUNNING'",
            params![owner],
        )
        .await?;
    requeued(c, done).await
}

/// Re-queues every RUNNING run, whoever holds it: only correct when no other process can be
/// running these runs (SQLite, whose database lock the caller holds). On PostgreSQL several
/// processes share the queue and leftover runs come back when their lease expires.
pub async fn requeue_all_running(c: &mut dyn Conn) -> StoreResult<u64> {
    recover(c, "status = 'RUNNING'", params![]).await
}

/// Wakes the claimers of every process when `count` runs went back to the queue.
async fn requeued(c: &mut dyn Conn, count: u64) -> StoreResult<u64> {
    if count > 0 {
        c.notify(RUNS_CHANNEL).await?;
    }
    Ok(count)
}

/// Queues a terminal (not succeeded) run again, keeping its step results.
pub async fn retry(c: &mut dyn Conn, actor: &Actor, id: &str) -> StoreResult<RunSummary> {
    let row = c
        .query_opt(
            "UPDATE runs SET status = 'QUEUED', finished = NULL, error = NULL, duration_ms = NULL, \
             lease_owner = NULL, lease_expires = NULL, not_before = NULL \
             WHERE id = ? AND status IN ('FAILED', 'TIMEOUT', 'CANCELED') RETURNING *",
            params![id],
        )
        .await?;
    let Some(row) = row else {
        let status = c
            .query_opt("SELECT status FROM runs WHERE id = ?", params![id])
            .await?;
        return Err(match status {
            None => StoreError::NotFound(format!("run {id}")),
            Some(row) => StoreError::Conflict(format!(
                "run {id} is {}; only FAILED, TIMEOUT or CANCELED runs can be retried",
                row.text("status")?
            )),
        });
    };
    let run = run_summary(&row)?;
    let names = flow_names(c, std::slice::from_ref(&run.flow_id)).await?;
    let data = json!({"flowRun": {
        "id": run.id, "flowId": run.flow_id, "flowVersionId": run.flow_version.to_string(),
        "flowDisplayName": names.get(&run.flow_id), "environment": run.environment,
        "status": run.status, "attempt": run.attempt + 1,
    }});
    let draft = AuditDraft::new(
        &run.platform_id,
        Some(&run.project_id),
        actor,
        AuditAction::FlowRunRetried,
        data,
    );
    c.notify(RUNS_CHANNEL).await?;
    audit::append(c, &[draft]).await?;
    Ok(run)
}

/// Stores a run that executed outside the queue (a test run), its event and its steps.
pub async fn record_finished(
    c: &mut dyn Conn,
    event: &NewEvent,
    outcome: &RunOutcome,
) -> StoreResult<()> {
    let now = now_text();
    c.execute(
        "INSERT INTO events (id, flow_id, event_key, run_id, headers, body, received) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![
            &event.event_id,
            &event.flow_id,
            &event.event_key,
            &event.run_id,
            event.headers.to_string(),
            &event.body,
            &now,
        ],
    )
    .await?;
    c.execute(
        "INSERT INTO runs (id, platform_id, project_id, flow_id, flow_version, event_id, environment, status, \
         attempt, created, started, finished, duration_ms, error) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
        params![
            &event.run_id,
            &event.scope.platform_id,
            &event.scope.project_id,
            &event.flow_id,
            event.flow_version,
            &event.event_id,
            event.environment.as_str(),
            outcome.status.as_str(),
            &now,
            &now,
            &now,
            outcome.duration_ms,
            &outcome.error,
        ],
    )
    .await?;
    let steps: Vec<(&str, &StepRecord)> = outcome
        .steps
        .iter()
        .map(|s| (event.run_id.as_str(), s))
        .collect();
    upsert_steps(c, &steps).await
}

/// One run with its event and steps.
pub async fn get(c: &mut dyn Conn, id: &str) -> StoreResult<Option<RunDetail>> {
    let Some(row) = c
        .query_opt(
            "SELECT r.*, e.headers AS event_headers, e.body AS event_body \
             FROM runs r JOIN events e ON e.id = r.event_id WHERE r.id = ?",
            params![id],
        )
        .await?
    else {
        return Ok(None);
    };
    let summary = run_summary(&row)?;
    let trigger = json!({"headers": row.json("event_headers")?, "body": row.json("event_body")?});
    let steps = c
        .query(
            "SELECT * FROM step_results WHERE run_id = ? ORDER BY seq",
            params![id],
        )
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

/// The headers of the event that started a run (`None` for an unknown run): where the
/// causation depth of the run's own events is read from (see `stream::HOP_HEADER`).
pub async fn trigger_headers(c: &mut dyn Conn, run_id: &str) -> StoreResult<Option<Value>> {
    let Some(row) = c
        .query_opt(
            "SELECT e.headers FROM runs r JOIN events e ON e.id = r.event_id WHERE r.id = ?",
            params![run_id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(row.json("headers")?))
}

/// Runs, newest first.
pub async fn list(c: &mut dyn Conn, filter: &RunFilter) -> StoreResult<Page<RunSummary>> {
    let mut sql = String::from("SELECT * FROM runs WHERE TRUE");
    let mut args = Vec::new();
    if let Some(flow_id) = &filter.flow_id {
        sql.push_str(" AND flow_id = ?");
        args.push(Param::from(flow_id));
    }
    if let Some(status) = filter.status {
        sql.push_str(" AND status = ?");
        args.push(Param::from(status.as_str()));
    }
    if let Some(environment) = filter.environment {
        sql.push_str(" AND environment = ?");
        args.push(Param::from(environment.as_str()));
    }
    if let Some(projects) = &filter.projects {
        let (cond, values) = in_list("project_id", projects);
        sql.push_str(&format!(" AND {cond}"));
        args.extend(values);
    }
    push_created_range(
        &mut sql,
        &mut args,
        filter.created_after.as_ref(),
        filter.created_before.as_ref(),
    );
    let key = filter.cursor.as_ref().map(|c| (c, Param::from(c.key())));
    let backwards = push_cursor(&mut sql, &mut args, "id", key, filter.limit);
    let items = c
        .query(&sql, args)
        .await?
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
pub async fn queue_depth(c: &mut dyn Conn) -> StoreResult<(i64, i64)> {
    let mut depth = (0, 0);
    for row in c
        .query(
            "SELECT status, COUNT(*) AS n FROM runs WHERE status IN ('QUEUED', 'RUNNING') GROUP BY status",
            params![],
        )
        .await?
    {
        match row.text("status")?.as_str() {
            "QUEUED" => depth.0 = row.int("n")?,
            _ => depth.1 = row.int("n")?,
        }
    }
    Ok(depth)
}

const STEP_COLUMNS: &[Col] = &[
    Col("run_id", Ty::Text),
    Col("name", Ty::Text),
    Col("seq", Ty::Int),
    Col("kind", Ty::Text),
    Col("status", Ty::Text),
    Col("input", Ty::Text),
    Col("output", Ty::Text),
    Col("error", Ty::Text),
    Col("attempts", Ty::Int),
    Col("duration_ms", Ty::Real),
    Col("detail", Ty::Text),
];

/// Writes step results, replacing earlier rows of the same steps (a retried run).
pub async fn upsert_steps(c: &mut dyn Conn, steps: &[(&str, &StepRecord)]) -> StoreResult<()> {
    if steps.is_empty() {
        return Ok(());
    }
    // One statement may not upsert a row twice: keep the last record of a repeated step.
    let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(steps.len());
    for (i, (run_id, step)) in steps.iter().enumerate() {
        last.insert((run_id, step.name.as_str()), i);
    }
    let rows: Vec<Vec<Param>> = steps
        .iter()
        .enumerate()
        .filter(|(i, (run_id, s))| last.get(&(*run_id, s.name.as_str())) == Some(i))
        .map(|(_, (run_id, s))| {
            vec![
                Param::from(*run_id),
                Param::from(&s.name),
                Param::from(s.seq),
                Param::from(s.kind.as_str()),
                Param::from(s.status.as_str()),
                Param::from(s.input.as_ref().map(Value::to_string)),
                Param::from(s.output.as_ref().map(Value::to_string)),
                Param::from(&s.error),
                Param::from(s.attempts),
                Param::from(s.duration_ms),
                Param::from(s.detail.as_ref().map(Value::to_string)),
            ]
        })
        .collect();
    c.bulk(
        "INSERT INTO step_results (run_id, name, seq, kind, status, input, output, error, attempts, duration_ms, detail) \
         SELECT v.run_id, v.name, v.seq, v.kind, v.status, v.input, v.output, v.error, v.attempts, v.duration_ms, v.detail \
         FROM {rows} WHERE TRUE \
         ON CONFLICT (run_id, name) DO UPDATE SET seq = excluded.seq, kind = excluded.kind, status = excluded.status, \
         input = excluded.input, output = excluded.output, error = excluded.error, attempts = excluded.attempts, \
         duration_ms = excluded.duration_ms, detail = excluded.detail",
        STEP_COLUMNS,
        rows,
    )
    .await?;
    Ok(())
}

/// Display names of flows by id (deleted flows included: runs outlive them).
pub async fn flow_names(c: &mut dyn Conn, ids: &[String]) -> StoreResult<HashMap<String, String>> {
    let mut unique: Vec<String> = ids.to_vec();
    unique.sort();
    unique.dedup();
    let mut names = HashMap::with_capacity(unique.len());
    for chunk in unique.chunks(CHUNK) {
        let (cond, args) = in_list("id", chunk);
        for row in c
            .query(&format!("SELECT id, name FROM flows WHERE {cond}"), args)
            .await?
        {
            names.insert(row.text("id")?, row.text("name")?);
        }
    }
    Ok(names)
}
