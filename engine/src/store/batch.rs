//! Group commit for the hot path, once for both backends: `accept_event`, `finish_run` and
//! `claim_runs` requests that arrive while an earlier batch is being written are written
//! together, in one transaction, and answered together after the commit.
//!
//! Each batch task takes whatever is waiting when it becomes free; no timer is involved, so a lone
//! request is written at once. SQLite runs one task (its writer thread is the only writer, and the
//! whole batch runs there as one job: no hand-off per statement); PostgreSQL runs a few, so while
//! one batch commits the next is already being written on another connection.
//!
//! A webhook batch (many events in one request) is written by [`accept_together`] in a
//! transaction of its own instead, so that it commits or fails as a whole.
//!
//! One error policy on both backends: when a batch fails because of one request's content (a data
//! or integrity error, or a write that panicked), every request of the batch is written again on
//! its own, so the bad one fails alone with its own error and the rest commit. A deadlock or
//! serialization failure runs the batch again. Correctness across processes does not depend on
//! the batching: dedup rests on the unique index of `events`, and a finish applies only while the
//! finisher still holds the run's lease.

use super::audit::{self, AuditDraft, started_at_intake};
use super::rows::{lock_in_order, run_summary};
use super::runs::{self, RUNS_CHANNEL, flow_names, upsert_steps};
use super::sql::{AnyBackend, CHUNK, Col, Conn, Param, Ty, job, write};
use super::{
    Accepted, ClaimedRun, NewEvent, RunOutcome, StepRecord, StoreError, StoreResult, epoch_ms,
    now_text,
};
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
    Claim {
        owner: String,
        limit: u32,
        lease_ms: i64,
        reply: Reply<Vec<ClaimedRun>>,
    },
}

/// What one batch writes.
#[derive(Default)]
struct Input {
    events: Vec<NewEvent>,
    outcomes: Vec<RunOutcome>,
    claims: Vec<(String, u32, i64)>,
}

/// What one batch answers, in the order of its input.
struct Output {
    accepted: Vec<Accepted>,
    finished: Vec<bool>,
    claimed: Vec<Vec<ClaimedRun>>,
}

/// Starts the backend's batch tasks and returns the channel requests are sent on. The tasks stop
/// when every sender is dropped.
pub fn spawn(backend: Arc<dyn AnyBackend>) -> mpsc::Sender<Op> {
    let (sender, receiver) = mpsc::channel(16 * 1024);
    let receiver = Arc::new(Mutex::new(receiver));
    for _ in 0..backend.batch_writers().max(1) {
        tokio::spawn(write_loop(backend.clone(), receiver.clone()));
    }
    sender
}

async fn write_loop(backend: Arc<dyn AnyBackend>, receiver: Arc<Mutex<mpsc::Receiver<Op>>>) {
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
        write_and_reply(&*backend, batch).await;
    }
}

/// Writes one batch and answers every request in it.
async fn write_and_reply(backend: &dyn AnyBackend, batch: Vec<Op>) {
    let mut input = Input::default();
    let mut accept_replies = Vec::new();
    let mut finish_replies = Vec::new();
    let mut claim_replies = Vec::new();
    for op in batch {
        match op {
            Op::Accept(event, reply) => {
                input.events.push(event);
                accept_replies.push(reply);
            }
            Op::Finish(outcome, reply) => {
                input.outcomes.push(outcome);
                finish_replies.push(reply);
            }
            Op::Claim {
                owner,
                limit,
                lease_ms,
                reply,
            } => {
                input.claims.push((owner, limit, lease_ms));
                claim_replies.push(reply);
            }
        }
    }
    let size = input.events.len() + input.outcomes.len() + input.claims.len();
    let input = Arc::new(input);
    let result = write_with_retry(backend, input.clone()).await;
    match result {
        Ok(output) => {
            for (reply, answer) in accept_replies.into_iter().zip(output.accepted) {
                let _ = reply.send(Ok(answer));
            }
            for (reply, answer) in finish_replies.into_iter().zip(output.finished) {
                let _ = reply.send(Ok(answer));
            }
            for (reply, answer) in claim_replies.into_iter().zip(output.claimed) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(error) if size > 1 && caused_by_content(&error) => {
            tracing::warn!(%error, size, "group commit failed on a request's content; writing each request on its own");
            isolate(
                backend,
                &input,
                accept_replies,
                finish_replies,
                claim_replies,
            )
            .await;
        }
        Err(error) => {
            let message = error.to_string();
            tracing::error!(%message, size, "group commit failed");
            let fail = || StoreError::Write(message.clone());
            for reply in accept_replies {
                let _ = reply.send(Err(fail()));
            }
            for reply in finish_replies {
                let _ = reply.send(Err(fail()));
            }
            for reply in claim_replies {
                let _ = reply.send(Err(fail()));
            }
        }
    }
}

/// A failure one request's content can cause: an integrity or data error, or a write that
/// panicked. Running each request alone finds the culprit.
fn caused_by_content(error: &StoreError) -> bool {
    error.is_data_error() || matches!(error, StoreError::Write(_))
}

/// Writes every request of a failed batch in a transaction of its own and answers each with its
/// own result.
async fn isolate(
    backend: &dyn AnyBackend,
    input: &Input,
    accepts: Vec<Reply<Accepted>>,
    finishes: Vec<Reply<bool>>,
    claims: Vec<Reply<Vec<ClaimedRun>>>,
) {
    for (event, reply) in input.events.iter().zip(accepts) {
        let alone = Input {
            events: vec![event.clone()],
            ..Input::default()
        };
        let answer = write_with_retry(backend, Arc::new(alone)).await;
        let _ = reply.send(answer.and_then(|mut o| {
            o.accepted
                .pop()
                .ok_or_else(|| StoreError::Write("no answer for the event".into()))
        }));
    }
    for (outcome, reply) in input.outcomes.iter().zip(finishes) {
        let alone = Input {
            outcomes: vec![outcome.clone()],
            ..Input::default()
        };
        let answer = write_with_retry(backend, Arc::new(alone)).await;
        let _ = reply.send(answer.map(|o| o.finished.first().copied().unwrap_or(false)));
    }
    for (claim, reply) in input.claims.iter().zip(claims) {
        let alone = Input {
            claims: vec![claim.clone()],
            ..Input::default()
        };
        let answer = write_with_retry(backend, Arc::new(alone)).await;
        let _ = reply.send(answer.map(|mut o| o.claimed.pop().unwrap_or_default()));
    }
}

/// Writes the events of one webhook batch in one transaction of their own, all or nothing:
/// the same statements as a group commit's accepts (dedup on `(flow, key)`, a key repeated
/// within the batch answered as a duplicate of its first element, a `flow.run.started` audit
/// event for any run stored started), but never mixed with other requests. A group commit
/// that fails on one request's content writes each request again on its own, which would
/// split a batch; a batch fails or commits whole. A deadlock or serialization failure runs it
/// again, like a group commit. Answers in the order of `events`.
pub async fn accept_together(
    backend: &dyn AnyBackend,
    events: Vec<NewEvent>,
) -> StoreResult<Vec<Accepted>> {
    let input = Arc::new(Input {
        events,
        ..Input::default()
    });
    Ok(write_with_retry(backend, input).await?.accepted)
}

async fn write_with_retry(backend: &dyn AnyBackend, input: Arc<Input>) -> StoreResult<Output> {
    let mut attempt = 1;
    loop {
        let input = input.clone();
        let job = job(move |c| Box::pin(async move { write_batch(c, &input).await }));
        let result = write(backend, job).await;
        match result {
            Err(error) if attempt < ATTEMPTS && error.is_transient() => {
                tracing::debug!(%error, attempt, "group commit conflicted; writing it again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// One transaction: accepts, finishes, claims, then every audit event of the batch in one append
/// (which takes the chain head's lock, then held only until the commit right after it).
async fn write_batch(c: &mut dyn Conn, input: &Input) -> StoreResult<Output> {
    let mut drafts = Vec::new();
    let accepted = write_accepts(c, &input.events, &mut drafts).await?;
    let finished = write_finishes(c, &input.outcomes, &mut drafts).await?;
    let mut claimed = Vec::with_capacity(input.claims.len());
    for (owner, limit, lease_ms) in &input.claims {
        let (runs, started) = runs::claim(c, owner, *limit, *lease_ms).await?;
        drafts.extend(started);
        claimed.push(runs);
    }
    audit::append(c, &drafts).await?;
    Ok(Output {
        accepted,
        finished,
        claimed,
    })
}

const EVENT_COLUMNS: &[Col] = &[
    Col("id", Ty::Text),
    Col("flow_id", Ty::Text),
    Col("event_key", Ty::Text),
    Col("run_id", Ty::Text),
    Col("headers", Ty::Text),
    Col("body", Ty::Text),
    Col("received", Ty::Text),
];

const RUN_COLUMNS: &[Col] = &[
    Col("id", Ty::Text),
    Col("platform_id", Ty::Text),
    Col("project_id", Ty::Text),
    Col("flow_id", Ty::Text),
    Col("flow_version", Ty::Int),
    Col("event_id", Ty::Text),
    Col("environment", Ty::Text),
    Col("status", Ty::Text),
    Col("attempt", Ty::Int),
    Col("created", Ty::Text),
    Col("started", Ty::Text),
    Col("lease_owner", Ty::Text),
    Col("lease_expires", Ty::Int),
];

/// Inserts the batch's new events with their runs; finds the runs of duplicates.
async fn write_accepts(
    c: &mut dyn Conn,
    events: &[NewEvent],
    drafts: &mut Vec<AuditDraft>,
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
    // rows in the same order and cannot deadlock (PostgreSQL).
    fresh.sort_by(|a, b| (&a.flow_id, &a.event_key).cmp(&(&b.flow_id, &b.event_key)));
    let received = now_text();
    let rows = fresh
        .iter()
        .map(|e| {
            vec![
                Param::from(&e.event_id),
                Param::from(&e.flow_id),
                Param::from(&e.event_key),
                Param::from(&e.run_id),
                Param::from(e.headers.to_string()),
                Param::from(&e.body),
                Param::from(&received),
            ]
        })
        .collect();
    let inserted: HashSet<String> = c
        .bulk(
            "INSERT INTO events (id, flow_id, event_key, run_id, headers, body, received) \
             SELECT v.id, v.flow_id, v.event_key, v.run_id, v.headers, v.body, v.received FROM {rows} WHERE TRUE \
             ON CONFLICT (flow_id, event_key) DO NOTHING RETURNING id",
            EVENT_COLUMNS,
            rows,
        )
        .await?
        .iter()
        .map(|r| r.text("id"))
        .collect::<StoreResult<_>>()?;
    let new_runs: Vec<&NewEvent> = fresh
        .iter()
        .copied()
        .filter(|e| inserted.contains(&e.event_id))
        .collect();
    let now_ms = epoch_ms();
    let run_rows: Vec<Vec<Param>> = new_runs
        .iter()
        .map(|e| {
            let lease = e.lease.as_ref();
            vec![
                Param::from(&e.run_id),
                Param::from(&e.scope.platform_id),
                Param::from(&e.scope.project_id),
                Param::from(&e.flow_id),
                Param::from(e.flow_version),
                Param::from(&e.event_id),
                Param::from(e.environment.as_str()),
                Param::from(if lease.is_some() { "RUNNING" } else { "QUEUED" }),
                Param::from(i64::from(lease.is_some())),
                Param::from(&received),
                Param::from(lease.map(|_| &received)),
                Param::from(lease.map(|l| &l.owner)),
                Param::from(lease.map(|l| now_ms + l.lease_ms)),
            ]
        })
        .collect();
    c.bulk(
        "INSERT INTO runs (id, platform_id, project_id, flow_id, flow_version, event_id, environment, status, \
         attempt, created, started, lease_owner, lease_expires) \
         SELECT v.id, v.platform_id, v.project_id, v.flow_id, v.flow_version, v.event_id, v.environment, v.status, \
         v.attempt, v.created, v.started, v.lease_owner, v.lease_expires FROM {rows} WHERE TRUE",
        RUN_COLUMNS,
        run_rows,
    )
    .await?;
    if new_runs.iter().any(|e| e.lease.is_none()) {
        c.notify(RUNS_CHANNEL).await?;
    }
    let leased: Vec<&NewEvent> = new_runs
        .iter()
        .copied()
        .filter(|e| e.lease.is_some())
        .collect();
    if !leased.is_empty() {
        let flow_ids: Vec<String> = leased.iter().map(|e| e.flow_id.clone()).collect();
        let names = flow_names(c, &flow_ids).await?;
        drafts.extend(started_at_intake(&leased, &received, &names));
    }
    let earlier = earlier_runs(c, &fresh, &inserted).await?;
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

/// The runs of stored events that the batch's duplicates collided with, by `(flow, key)`. On
/// PostgreSQL the conflicting rows are committed by now: `ON CONFLICT` waited for their
/// transactions, and this statement takes a fresh snapshot.
async fn earlier_runs(
    c: &mut dyn Conn,
    fresh: &[&NewEvent],
    inserted: &HashSet<String>,
) -> StoreResult<HashMap<(String, Option<String>), String>> {
    let keys: Vec<(&String, &String)> = fresh
        .iter()
        .filter(|e| !inserted.contains(&e.event_id))
        .filter_map(|e| Some((&e.flow_id, e.event_key.as_ref()?)))
        .collect();
    let mut runs = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK / 2) {
        let pairs = vec!["(?, ?)"; chunk.len()].join(", ");
        let args = chunk
            .iter()
            .flat_map(|(flow, key)| [Param::from(*flow), Param::from(*key)])
            .collect();
        for row in c
            .query(
                &format!(
                    "SELECT flow_id, event_key, run_id FROM events WHERE (flow_id, event_key) IN (VALUES {pairs})"
                ),
                args,
            )
            .await?
        {
            runs.insert(
                (row.text("flow_id")?, row.opt_text("event_key")?),
                row.text("run_id")?,
            );
        }
    }
    Ok(runs)
}

const FINISH_COLUMNS: &[Col] = &[
    Col("id", Ty::Text),
    Col("owner", Ty::Text),
    Col("status", Ty::Text),
    Col("error", Ty::Text),
    Col("duration_ms", Ty::Real),
    Col("finished", Ty::Text),
];

/// Applies the finishes whose owner still holds the run's lease, with their steps, and collects
/// their `flow.run.finished` audit events. Returns, per outcome, whether it was applied. Only the
/// first outcome for a run in a batch can apply, so a run finishes exactly once even when the
/// same finish is sent twice at the same moment.
async fn write_finishes(
    c: &mut dyn Conn,
    outcomes: &[RunOutcome],
    drafts: &mut Vec<AuditDraft>,
) -> StoreResult<Vec<bool>> {
    if outcomes.is_empty() {
        return Ok(Vec::new());
    }
    let mut first_for_run: HashMap<&str, usize> = HashMap::with_capacity(outcomes.len());
    for (i, o) in outcomes.iter().enumerate() {
        first_for_run.entry(o.run_id.as_str()).or_insert(i);
    }
    let mut candidates: Vec<&RunOutcome> = first_for_run.values().map(|&i| &outcomes[i]).collect();
    candidates.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    let ids: Vec<String> = candidates.iter().map(|o| o.run_id.clone()).collect();
    lock_in_order(c, "runs", &ids).await?;
    let now = now_text();
    let rows = candidates
        .iter()
        .map(|o| {
            vec![
                Param::from(&o.run_id),
                Param::from(&o.owner),
                Param::from(o.status.as_str()),
                Param::from(&o.error),
                Param::from(o.duration_ms),
                Param::from(&now),
            ]
        })
        .collect();
    let finished_rows = c
        .bulk(
            "UPDATE runs SET status = v.status, error = v.error, duration_ms = v.duration_ms, finished = v.finished, \
             lease_owner = NULL, lease_expires = NULL, not_before = NULL \
             FROM {rows} WHERE runs.id = v.id AND runs.lease_owner = v.owner AND runs.status = 'RUNNING' \
             RETURNING runs.id, runs.platform_id, runs.project_id, runs.flow_id, runs.flow_version, runs.event_id, \
             runs.environment, runs.status, runs.attempt, runs.created, runs.started, runs.finished, runs.duration_ms, runs.error, \
             (SELECT name FROM flows f WHERE f.id = runs.flow_id) AS flow_name",
            FINISH_COLUMNS,
            rows,
        )
        .await?;
    let mut finished: HashSet<String> = HashSet::with_capacity(finished_rows.len());
    for row in &finished_rows {
        let run = run_summary(row)?;
        finished.insert(run.id.clone());
        drafts.push(runs::finished_draft(&run, row.opt_text("flow_name")?));
    }
    let steps: Vec<(&str, &StepRecord)> = candidates
        .iter()
        .filter(|o| finished.contains(&o.run_id))
        .flat_map(|o| o.steps.iter().map(move |s| (o.run_id.as_str(), s)))
        .collect();
    upsert_steps(c, &steps).await?;
    Ok(outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            first_for_run.get(o.run_id.as_str()) == Some(&i) && finished.contains(&o.run_id)
        })
        .collect())
}
