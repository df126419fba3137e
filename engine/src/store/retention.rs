//! Run retention's storage side: which finished runs a batch takes, what is archived of them,
//! and their delete with their step results and events.
//!
//! A batch is split so the store's writer is held for the delete only: on SQLite every write
//! goes through its one writer thread, where webhook intake's group commits queue behind
//! whatever runs there, and on PostgreSQL a long delete holds row locks. So
//! 1. [`expired_runs`] reads the batch's runs on a reader connection (no lock);
//! 2. [`archive_records`] reads their events and step results, when an archive is kept (the
//!    caller writes and syncs the archive, off the writer);
//! 3. [`delete_runs`] deletes exactly those runs in one short write transaction, each only if it
//!    is still in the status it was read in and still finished before the cut-off, and with
//!    them only the step results and events of the runs it did delete.
//!
//! Step 3's re-check is what makes the archive safe: a run that changed between the read and the
//! delete (retried: QUEUED again, or finished again later) is not deleted, so nothing is
//! deleted in another state than the one archived; it is taken, and archived again, by a later
//! pass. Two processes (PostgreSQL) may both archive a batch; one of them deletes it.
//!
//! Only terminal runs (SUCCEEDED, FAILED, TIMEOUT, CANCELED) with a `finished` time before the
//! cut-off are ever selected: a QUEUED or RUNNING run is live whatever its age. Each batch reads
//! one status in id order from the `(status, id)` index, between the previous batch's last id
//! and the cut-off's UUIDv7 prefix (a run is created, and gets its time-ordered id, before it
//! finishes): no batch sorts or scans the whole table, whatever its size. Bench:
//! `bench/retention.py`.

use super::rows::{in_list, run_summary, step_record};
use super::sql::{Conn, Param};
use super::{RunStatus, RunSummary, StepRecord, Store, StoreError, StoreResult};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// Runs one batch takes at most (the pass adapts its batches below this to how long a delete
/// takes).
pub const RETENTION_BATCH: u32 = 1000;

/// Which flows a retention batch covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionScope {
    /// Only this flow's runs (a per-flow retention).
    Flow(String),
    /// Every flow but these (the default retention; the listed flows have their own).
    AllExcept(Vec<String>),
}

/// The statuses retention deletes, one index range each.
pub const TERMINAL_STATUSES: [RunStatus; 4] = [
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Timeout,
    RunStatus::Canceled,
];

/// One run as the run archive keeps it: one JSON line per run.
#[derive(Debug, Clone, Serialize)]
pub struct ArchivedRun {
    /// The run record, as `GET /v1/flow-runs/{id}` shows it (without trigger and steps).
    pub run: RunSummary,
    /// The event that started the run; `None` only if it was already gone.
    pub event: Option<ArchivedEvent>,
    /// Its step results, in execution order.
    pub steps: Vec<StepRecord>,
}

/// A stored webhook event, as archived with its run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchivedEvent {
    pub id: String,
    pub flow_id: String,
    /// The sender's id the event was deduplicated by.
    pub event_key: Option<String>,
    pub run_id: String,
    pub headers: Value,
    pub body: Value,
    pub received: String,
}

/// The smallest UUIDv7 text of the millisecond `finished_before` names: every run created
/// before it has a smaller id. `None` when the time is not in the stored form.
fn id_bound(finished_before: &str) -> Option<String> {
    let ms = chrono::DateTime::parse_from_rfc3339(finished_before)
        .ok()?
        .timestamp_millis();
    let ms = u64::try_from(ms).ok()? & 0xFFFF_FFFF_FFFF;
    Some(format!("{:08x}-{:04x}", ms >> 16, ms & 0xFFFF))
}

/// Refuses a status retention must never delete.
fn check_terminal(status: RunStatus) -> StoreResult<()> {
    if status.is_terminal() {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "retention never deletes {} runs",
            status.as_str()
        )))
    }
}

/// At most `limit` runs in `status` (a terminal one) of `scope` finished before
/// `finished_before` (RFC 3339, the stored form) with ids after `after`, in id order. Empty
/// when this status has no more.
pub async fn expired_runs(
    c: &mut dyn Conn,
    scope: &RetentionScope,
    status: RunStatus,
    finished_before: &str,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<RunSummary>> {
    check_terminal(status)?;
    let bound = id_bound(finished_before)
        .ok_or_else(|| StoreError::Conflict(format!("not a stored time: {finished_before:?}")))?;
    let mut sql = String::from(
        "SELECT * FROM runs \
         WHERE status = ? AND id < ? AND finished IS NOT NULL AND finished < ?",
    );
    let mut args = vec![
        Param::from(status.as_str()),
        Param::from(bound),
        Param::from(finished_before),
    ];
    match scope {
        RetentionScope::Flow(flow_id) => {
            sql.push_str(" AND flow_id = ?");
            args.push(Param::from(flow_id));
        }
        RetentionScope::AllExcept(flows) if !flows.is_empty() => {
            let (cond, values) = in_list("flow_id", flows);
            sql.push_str(&format!(" AND NOT ({cond})"));
            args.extend(values);
        }
        RetentionScope::AllExcept(_) => {}
    }
    if let Some(after) = after {
        sql.push_str(" AND id > ?");
        args.push(Param::from(after));
    }
    sql.push_str(" ORDER BY id LIMIT ?");
    args.push(Param::from(i64::from(limit)));
    c.query(&sql, args).await?.iter().map(run_summary).collect()
}

/// `runs` with their events and step results, for the archive.
pub async fn archive_records(
    c: &mut dyn Conn,
    runs: Vec<RunSummary>,
) -> StoreResult<Vec<ArchivedRun>> {
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let event_ids: Vec<String> = runs.iter().map(|r| r.event_id.clone()).collect();
    let (cond, args) = in_list("run_id", &ids);
    let mut steps: HashMap<String, Vec<StepRecord>> = HashMap::new();
    for row in c
        .query(
            &format!("SELECT * FROM step_results WHERE {cond} ORDER BY run_id, seq"),
            args,
        )
        .await?
    {
        steps
            .entry(row.text("run_id")?)
            .or_default()
            .push(step_record(&row)?);
    }
    let (cond, args) = in_list("id", &event_ids);
    let mut events: HashMap<String, ArchivedEvent> = HashMap::new();
    for row in c
        .query(&format!("SELECT * FROM events WHERE {cond}"), args)
        .await?
    {
        let event = ArchivedEvent {
            id: row.text("id")?,
            flow_id: row.text("flow_id")?,
            event_key: row.opt_text("event_key")?,
            run_id: row.text("run_id")?,
            headers: row.json("headers")?,
            body: row.json("body")?,
            received: row.text("received")?,
        };
        events.insert(event.id.clone(), event);
    }
    Ok(runs
        .into_iter()
        .map(|run| ArchivedRun {
            event: events.remove(&run.event_id),
            steps: steps.remove(&run.id).unwrap_or_default(),
            run,
        })
        .collect())
}

/// Deletes the runs `ids` that are still in `status` and finished before `finished_before`,
/// with their step results and the events they were started by, in the caller's transaction.
/// Returns how many runs it deleted.
pub async fn delete_runs(
    c: &mut dyn Conn,
    ids: &[String],
    status: RunStatus,
    finished_before: &str,
) -> StoreResult<u64> {
    check_terminal(status)?;
    if ids.is_empty() {
        return Ok(0);
    }
    let (cond, mut args) = in_list("id", ids);
    args.push(Param::from(status.as_str()));
    args.push(Param::from(finished_before));
    let rows = c
        .query(
            &format!(
                "DELETE FROM runs WHERE {cond} AND status = ? \
                 AND finished IS NOT NULL AND finished < ? RETURNING id, event_id"
            ),
            args,
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut runs = Vec::with_capacity(rows.len());
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        runs.push(row.text("id")?);
        events.push(row.text("event_id")?);
    }
    let (run_cond, run_args) = in_list("run_id", &runs);
    c.execute(
        &format!("DELETE FROM step_results WHERE {run_cond}"),
        run_args,
    )
    .await?;
    // By primary key, and only the events these runs were started by.
    let (event_cond, mut event_args) = in_list("id", &events);
    let (owner_cond, owner_args) = in_list("run_id", &runs);
    event_args.extend(owner_args);
    c.execute(
        &format!("DELETE FROM events WHERE {event_cond} AND {owner_cond}"),
        event_args,
    )
    .await?;
    Ok(runs.len() as u64)
}

impl Store {
    /// The runs the next retention batch takes ([`expired_runs`]), read without the writer.
    pub async fn expired_runs(
        &self,
        scope: &RetentionScope,
        status: RunStatus,
        finished_before: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<RunSummary>> {
        let after = after.map(str::to_string);
        on!(self.read, [scope, finished_before], |c| {
            expired_runs(c, &scope, status, &finished_before, after.as_deref(), limit)
        })
    }

    /// `runs` with their events and step results ([`archive_records`]), read without the writer.
    pub async fn archive_records(&self, runs: Vec<RunSummary>) -> StoreResult<Vec<ArchivedRun>> {
        on!(self.read, [], |c| archive_records(c, runs))
    }

    /// Deletes those of `ids` still expired ([`delete_runs`]) in one write transaction.
    pub async fn delete_expired_runs(
        &self,
        ids: &[String],
        status: RunStatus,
        finished_before: &str,
    ) -> StoreResult<u64> {
        on!(self.write, [ids, finished_before], |c| {
            delete_runs(c, &ids, status, &finished_before)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_bound_is_the_uuid7_prefix_of_the_cut_off() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-06T09:00:00.000Z").unwrap();
        let ms = at.timestamp_millis();
        let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            (ms / 1000) as u64,
            ((ms % 1000) * 1_000_000) as u32,
        ))
        .to_string();
        let bound = id_bound("2026-12-06T09:00:00.000Z").unwrap();
        assert!(id.starts_with(&bound), "{id} {bound}");
        // A millisecond earlier sorts below the bound; the bound's own millisecond does not.
        assert!(id_bound("2026-12-06T08:59:59.999Z").unwrap() < bound);
        assert!(id.as_str() > bound.as_str());
        assert_eq!(id_bound("yesterday"), None);
    }
}
