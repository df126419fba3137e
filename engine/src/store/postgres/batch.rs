//! Group commit for the hot path on PostgreSQL: `accept_event` and `finish_run` requests that
//! arrive while earlier ones are being written are written together, in one transaction with
//! array-bound (`UNNEST`) statements, and acknowledged together after the commit.
//!
//! Unlike SQLite there is no single writer: a few batch tasks share the request channel, so
//! while one batch commits the next one is already being written on another connection. Each
//! task takes whatever is waiting when it becomes free; no timer is involved, so a lone request
//! is written at once.
//!
//! Correctness across processes does not depend on the batching: dedup rests on the unique index
//! of `events` (`ON CONFLICT DO NOTHING`, then read the winner's run), and a finish applies only
//! while the finisher still holds the run's lease.

use super::audit;
use super::listen::notify_runs;
use super::runs::{flow_names, upsert_steps};
use crate::store::audit::started_at_intake;
use crate::store::{
    Accepted, Actor, AuditDraft, NewEvent, RunOutcome, StepRecord, StoreError, StoreResult,
    now_text,
};
use serde_json::json;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};

/// Requests written in one group commit at most.
const MAX_BATCH: usize = 2000;
/// How often a batch that hit a deadlock or serialization failure is tried again.
const ATTEMPTS: usize = 3;

type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// A pending hot-path write and where to send its result.
pub enum Op {
    Accept(NewEvent, Reply<Accepted>),
    Finish(RunOutcome, Reply<bool>),
}

/// Starts `tasks` batch writers over `pool` and returns the channel requests are sent on. The
/// writers stop when every sender is dropped.
pub fn spawn(pool: PgPool, tasks: usize) -> mpsc::Sender<Op> {
    let (sender, receiver) = mpsc::channel(16 * 1024);
    let receiver = Arc::new(Mutex::new(receiver));
    for _ in 0..tasks.max(1) {
        tokio::spawn(write_loop(pool.clone(), receiver.clone()));
    }
    sender
}

async fn write_loop(pool: PgPool, receiver: Arc<Mutex<mpsc::Receiver<Op>>>) {
    loop {
        let batch = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            batch
        };
        write_and_reply(&pool, batch).await;
    }
}

/// Writes one batch and answers every request in it. When the batch fails on bad data (an
/// integrity or data error), each request is written on its own so one bad request does not fail
/// the others.
async fn write_and_reply(pool: &PgPool, batch: Vec<Op>) {
    let mut accepts = Vec::new();
    let mut finishes = Vec::new();
    for op in batch {
        match op {
            Op::Accept(event, reply) => accepts.push((event, reply)),
            Op::Finish(outcome, reply) => finishes.push((outcome, reply)),
        }
    }
    let events: Vec<&NewEvent> = accepts.iter().map(|(e, _)| e).collect();
    let outcomes: Vec<&RunOutcome> = finishes.iter().map(|(o, _)| o).collect();
    let result = write_with_retry(pool, &events, &outcomes).await;
    let isolate =
        matches!(&result, Err(e) if is_data_error(e)) && events.len() + outcomes.len() > 1;
    if isolate {
        for (event, reply) in accepts {
            let answer = write_with_retry(pool, &[&event], &[]).await;
            let _ = reply.send(answer.and_then(|(mut a, _)| {
                a.pop()
                    .ok_or_else(|| StoreError::Write("no answer for the event".into()))
            }));
        }
        for (outcome, reply) in finishes {
            let answer = write_with_retry(pool, &[], &[&outcome]).await;
            let _ = reply.send(answer.map(|(_, f)| f.first().copied().unwrap_or(false)));
        }
        return;
    }
    match result {
        Ok((accepted, finished)) => {
            for ((_, reply), answer) in accepts.into_iter().zip(accepted) {
                let _ = reply.send(Ok(answer));
            }
            for ((_, reply), answer) in finishes.into_iter().zip(finished) {
                let _ = reply.send(Ok(answer));
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
        }
    }
}

/// An integrity or data error caused by one request's content, as opposed to the database
/// being unavailable.
fn is_data_error(error: &StoreError) -> bool {
    sqlstate(error).is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
}

/// Deadlocks and serialization failures: the transaction was rolled back and can simply run again.
fn is_transient(error: &StoreError) -> bool {
    sqlstate(error).is_some_and(|code| code == "40P01" || code == "40001")
}

fn sqlstate(error: &StoreError) -> Option<String> {
    match error {
        StoreError::Database(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

async fn write_with_retry(
    pool: &PgPool,
    events: &[&NewEvent],
    outcomes: &[&RunOutcome],
) -> StoreResult<(Vec<Accepted>, Vec<bool>)> {
    let mut attempt = 1;
    loop {
        match write_batch(pool, events, outcomes).await {
            Err(error) if attempt < ATTEMPTS && is_transient(&error) => {
                tracing::debug!(%error, attempt, "group commit conflicted; writing it again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// One transaction: accepts first, finishes last (their audit append takes the chain lock,
/// which is then held only until the commit right after it).
async fn write_batch(
    pool: &PgPool,
    events: &[&NewEvent],
    outcomes: &[&RunOutcome],
) -> StoreResult<(Vec<Accepted>, Vec<bool>)> {
    let mut tx = pool.begin().await?;
    let accepted = write_accepts(&mut tx, events).await?;
    let finished = write_finishes(&mut tx, outcomes).await?;
    tx.commit().await?;
    Ok((accepted, finished))
}

/// Column vectors of the events (and their runs) a batch inserts.
#[derive(Default)]
struct EventColumns {
    id: Vec<String>,
    flow_id: Vec<String>,
    event_key: Vec<Option<String>>,
    run_id: Vec<String>,
    headers: Vec<String>,
    body: Vec<String>,
    platform_id: Vec<String>,
    project_id: Vec<String>,
    flow_version: Vec<i64>,
    environment: Vec<String>,
    status: Vec<&'static str>,
    attempt: Vec<i64>,
    started: Vec<Option<String>>,
    lease_owner: Vec<Option<String>>,
    lease_expires: Vec<Option<i64>>,
}

async fn write_accepts(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&NewEvent],
) -> StoreResult<Vec<Accepted>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // The same event twice in one batch: only the first is inserted; the rest point at it.
    let mut first_with_key: HashMap<(&str, &str), usize> = HashMap::new();
    let mut same_as: Vec<Option<usize>> = vec![None; events.len()];
    let mut fresh: Vec<&NewEvent> = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        if let Some(key) = &event.event_key {
            let k = (event.flow_id.as_str(), key.as_str());
            if let Some(&first) = first_with_key.get(&k) {
                same_as[i] = Some(first);
                continue;
            }
            first_with_key.insert(k, i);
        }
        fresh.push(event);
    }
    // Insert in key order: two batches that share keys then wait on each other's uncommitted
    // rows in the same order and cannot deadlock.
    fresh.sort_by(|a, b| (&a.flow_id, &a.event_key).cmp(&(&b.flow_id, &b.event_key)));
    let mut cols = EventColumns::default();
    for e in &fresh {
        cols.id.push(e.event_id.clone());
        cols.flow_id.push(e.flow_id.clone());
        cols.event_key.push(e.event_key.clone());
        cols.run_id.push(e.run_id.clone());
        cols.headers.push(e.headers.to_string());
        cols.body.push(e.body.clone());
    }
    let received = now_text();
    let inserted: HashSet<String> = sqlx::query(
        "INSERT INTO events (id, flow_id, event_key, run_id, headers, body, received) \
         SELECT t.*, $7 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
         AS t(id, flow_id, event_key, run_id, headers, body) \
         ON CONFLICT (flow_id, event_key) DO NOTHING RETURNING id",
    )
    .bind(&cols.id)
    .bind(&cols.flow_id)
    .bind(&cols.event_key)
    .bind(&cols.run_id)
    .bind(&cols.headers)
    .bind(&cols.body)
    .bind(&received)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>("id"))
    .collect::<Result<_, _>>()?;
    let mut runs = EventColumns::default();
    let now_ms = super::runs::epoch_ms();
    let new_runs: Vec<&NewEvent> = fresh
        .iter()
        .copied()
        .filter(|e| inserted.contains(&e.event_id))
        .collect();
    for e in &new_runs {
        let lease = e.lease.as_ref();
        runs.run_id.push(e.run_id.clone());
        runs.platform_id.push(e.scope.platform_id.clone());
        runs.project_id.push(e.scope.project_id.clone());
        runs.flow_id.push(e.flow_id.clone());
        runs.flow_version.push(e.flow_version);
        runs.id.push(e.event_id.clone());
        runs.environment.push(e.environment.as_str().to_string());
        runs.status
            .push(if lease.is_some() { "RUNNING" } else { "QUEUED" });
        runs.attempt.push(i64::from(lease.is_some()));
        runs.started.push(lease.map(|_| received.clone()));
        runs.lease_owner.push(lease.map(|l| l.owner.clone()));
        runs.lease_expires.push(lease.map(|l| now_ms + l.lease_ms));
    }
    if !runs.run_id.is_empty() {
        sqlx::query(
            "INSERT INTO runs (id, platform_id, project_id, flow_id, flow_version, event_id, environment, status, attempt, started, lease_owner, lease_expires, created) \
             SELECT t.*, $13 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], \
             $8::text[], $9::bigint[], $10::text[], $11::text[], $12::bigint[]) \
             AS t(id, platform_id, project_id, flow_id, flow_version, event_id, environment, status, attempt, started, lease_owner, lease_expires)",
        )
        .bind(&runs.run_id)
        .bind(&runs.platform_id)
        .bind(&runs.project_id)
        .bind(&runs.flow_id)
        .bind(&runs.flow_version)
        .bind(&runs.id)
        .bind(&runs.environment)
        .bind(&runs.status)
        .bind(&runs.attempt)
        .bind(&runs.started)
        .bind(&runs.lease_owner)
        .bind(&runs.lease_expires)
        .bind(&received)
        .execute(&mut **tx)
        .await?;
        if runs.status.contains(&"QUEUED") {
            notify_runs(tx).await?;
        }
    }
    started_audit(tx, &new_runs, &received).await?;
    let earlier = earlier_runs(tx, &fresh, &inserted).await?;
    let mut answers: Vec<Accepted> = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
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
            let key = (event.flow_id.clone(), event.event_key.clone());
            let run_id = earlier.get(&key).cloned().ok_or_else(|| {
                StoreError::Write(format!(
                    "event {} of flow {} conflicted with a stored event that cannot be found",
                    event.event_id, event.flow_id
                ))
            })?;
            Accepted::Duplicate { run_id }
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// The `flow.run.started` audit events of runs accepted already claimed by their receiver.
async fn started_audit(
    tx: &mut Transaction<'_, Postgres>,
    new_runs: &[&NewEvent],
    started: &str,
) -> StoreResult<()> {
    let leased: Vec<&NewEvent> = new_runs
        .iter()
        .copied()
        .filter(|e| e.lease.is_some())
        .collect();
    if leased.is_empty() {
        return Ok(());
    }
    let flow_ids: Vec<String> = leased.iter().map(|e| e.flow_id.clone()).collect();
    let names = flow_names(tx, &flow_ids).await?;
    audit::append(tx, &started_at_intake(&leased, started, &names)).await
}

/// The runs of stored events that the batch's duplicates collided with, by `(flow, key)`. The
/// conflicting rows are committed by now: `ON CONFLICT` waited for their transactions, and this
/// statement takes a fresh snapshot.
async fn earlier_runs(
    tx: &mut Transaction<'_, Postgres>,
    fresh: &[&NewEvent],
    inserted: &HashSet<String>,
) -> StoreResult<HashMap<(String, Option<String>), String>> {
    let (flows, keys): (Vec<String>, Vec<String>) = fresh
        .iter()
        .filter(|e| !inserted.contains(&e.event_id))
        .filter_map(|e| Some((e.flow_id.clone(), e.event_key.clone()?)))
        .unzip();
    let mut runs = HashMap::with_capacity(flows.len());
    if flows.is_empty() {
        return Ok(runs);
    }
    for row in sqlx::query(
        "SELECT e.flow_id, e.event_key, e.run_id FROM events e \
         JOIN UNNEST($1::text[], $2::text[]) AS k(flow_id, event_key) \
         ON e.flow_id = k.flow_id AND e.event_key = k.event_key",
    )
    .bind(&flows)
    .bind(&keys)
    .fetch_all(&mut **tx)
    .await?
    {
        runs.insert(
            (row.try_get("flow_id")?, row.try_get("event_key")?),
            row.try_get("run_id")?,
        );
    }
    Ok(runs)
}

/// Column vectors of the finishes a batch applies.
#[derive(Default)]
struct FinishColumns {
    run_id: Vec<String>,
    owner: Vec<String>,
    status: Vec<String>,
    error: Vec<Option<String>>,
    duration_ms: Vec<f64>,
}

/// Applies the finishes whose owner still holds the run's lease, with their steps and
/// `flow.run.finished` audit events. Returns, per outcome, whether it was applied. Only the
/// first outcome for a run in a batch can apply, so a run finishes exactly once even when the
/// same finish is sent twice at the same moment.
async fn write_finishes(
    tx: &mut Transaction<'_, Postgres>,
    outcomes: &[&RunOutcome],
) -> StoreResult<Vec<bool>> {
    if outcomes.is_empty() {
        return Ok(Vec::new());
    }
    let mut first_for_run: HashMap<&str, usize> = HashMap::with_capacity(outcomes.len());
    for (i, o) in outcomes.iter().enumerate() {
        first_for_run.entry(o.run_id.as_str()).or_insert(i);
    }
    let mut candidates: Vec<&RunOutcome> = first_for_run.values().map(|&i| outcomes[i]).collect();
    candidates.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    let mut cols = FinishColumns::default();
    for o in &candidates {
        cols.run_id.push(o.run_id.clone());
        cols.owner.push(o.owner.clone());
        cols.status.push(o.status.as_str().to_string());
        cols.error.push(o.error.clone());
        cols.duration_ms.push(o.duration_ms);
    }
    // Lock the rows in id order before updating, like every multi-row lock on `runs`.
    sqlx::query("SELECT id FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&cols.run_id)
        .execute(&mut **tx)
        .await?;
    let rows = sqlx::query(
        "UPDATE runs r SET status = v.status, error = v.error, duration_ms = v.duration_ms, finished = $6, \
         lease_owner = NULL, lease_expires = NULL \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[]) AS v(id, owner, status, error, duration_ms) \
         WHERE r.id = v.id AND r.lease_owner = v.owner AND r.status = 'RUNNING' \
         RETURNING r.id, r.platform_id, r.project_id, r.flow_id, r.flow_version, r.environment, \
         r.status, r.started, r.finished, r.duration_ms, r.error",
    )
    .bind(&cols.run_id)
    .bind(&cols.owner)
    .bind(&cols.status)
    .bind(&cols.error)
    .bind(&cols.duration_ms)
    .bind(now_text())
    .fetch_all(&mut **tx)
    .await?;
    let mut finished: HashSet<String> = HashSet::with_capacity(rows.len());
    for row in &rows {
        finished.insert(row.try_get("id")?);
    }
    let flow_ids = super::runs::column(&rows, "flow_id")?;
    let names = flow_names(tx, &flow_ids).await?;
    let mut drafts = Vec::with_capacity(rows.len());
    for r in &rows {
        let flow_id: String = r.try_get("flow_id")?;
        let data = json!({"flowRun": {
            "id": r.try_get::<String, _>("id")?,
            "startTime": r.try_get::<Option<String>, _>("started")?,
            "finishTime": r.try_get::<Option<String>, _>("finished")?,
            "duration": r.try_get::<Option<f64>, _>("duration_ms")?.map(|d| d.round() as i64),
            "environment": r.try_get::<String, _>("environment")?,
            "flowId": flow_id,
            "flowVersionId": r.try_get::<i64, _>("flow_version")?.to_string(),
            "flowDisplayName": names.get(&flow_id),
            "status": r.try_get::<String, _>("status")?,
            "error": r.try_get::<Option<String>, _>("error")?,
        }});
        let platform: String = r.try_get("platform_id")?;
        let project: String = r.try_get("project_id")?;
        drafts.push(AuditDraft::new(
            &platform,
            Some(&project),
            &Actor::system(),
            "flow.run.finished",
            data,
        ));
    }
    let steps: Vec<(&str, &StepRecord)> = candidates
        .iter()
        .filter(|o| finished.contains(&o.run_id))
        .flat_map(|o| o.steps.iter().map(move |s| (o.run_id.as_str(), s)))
        .collect();
    upsert_steps(tx, &steps).await?;
    audit::append(tx, &drafts).await?;
    Ok(outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            first_for_run.get(o.run_id.as_str()) == Some(&i) && finished.contains(&o.run_id)
        })
        .collect())
}
