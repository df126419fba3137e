//! Run retention: deletes finished runs, their step results and their events once they are
//! older than the configured number of days, a bounded batch per transaction.
//!
//! Why batches: on SQLite every write goes through the one writer thread, and on PostgreSQL a
//! long delete holds row locks and bloats one transaction. A batch of [`RETENTION_BATCH`] runs is
//! one short transaction, so webhook intake (queued behind it on the same writer) waits for at
//! most one batch, never for the whole pass. The caller pauses between batches.
//!
//! Only terminal runs (SUCCEEDED, FAILED, TIMEOUT, CANCELED) with a `finished` time before the
//! cut-off are ever selected: a QUEUED or RUNNING run is live whatever its age. On PostgreSQL
//! the selected rows are locked with `SKIP LOCKED`, so a run another process is retrying right
//! now is left for the next pass.
//!
//! Each batch reads one status in id order from the `(status, id)` index, between the previous
//! batch's last id and the cut-off's UUIDv7 prefix (a run is created, and gets its time-ordered
//! id, before it finishes): no batch sorts or scans the whole table, whatever its size. Bench:
//! `bench/retention.py`.

use super::rows::in_list;
use super::sql::{Conn, Param};
use super::{RunStatus, Store, StoreError, StoreResult};

/// Runs deleted per transaction.
pub const RETENTION_BATCH: u32 = 1000;

/// Which flows a retention batch covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionScope {
    /// Only this flow's runs (a per-flow retention).
    Flow(String),
    /// Every flow but these (the default retention; the listed flows have their own).
    AllExcept(Vec<String>),
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionBatch {
    /// Runs deleted (with their step results and events).
    pub runs: u64,
    /// The greatest run id looked at: the next batch of the same pass starts after it.
    pub last_id: Option<String>,
}

/// The statuses retention deletes, one index range each.
pub const TERMINAL_STATUSES: [RunStatus; 4] = [
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Timeout,
    RunStatus::Canceled,
];

/// The smallest UUIDv7 text of the millisecond `finished_before` names: every run created
/// before it has a smaller id. `None` when the time is not in the stored form.
fn id_bound(finished_before: &str) -> Option<String> {
    let ms = chrono::DateTime::parse_from_rfc3339(finished_before)
        .ok()?
        .timestamp_millis();
    let ms = u64::try_from(ms).ok()? & 0xFFFF_FFFF_FFFF;
    Some(format!("{:08x}-{:04x}", ms >> 16, ms & 0xFFFF))
}

/// Deletes at most `limit` runs in `status` (a terminal one) of `scope` finished before
/// `finished_before` (RFC 3339, the stored form) with ids after `after`, and their step results
/// and events, in the caller's transaction. `last_id == None` means this status is done.
pub async fn delete_expired_runs(
    c: &mut dyn Conn,
    scope: &RetentionScope,
    status: RunStatus,
    finished_before: &str,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<RetentionBatch> {
    if !status.is_terminal() {
        return Err(StoreError::Conflict(format!(
            "retention never deletes {} runs",
            status.as_str()
        )));
    }
    let bound = id_bound(finished_before)
        .ok_or_else(|| StoreError::Conflict(format!("not a stored time: {finished_before:?}")))?;
    let mut sql = String::from(
        "SELECT id, event_id FROM runs \
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
    sql.push_str(c.dialect().skip_locked());
    let rows = c.query(&sql, args).await?;
    if rows.is_empty() {
        return Ok(RetentionBatch::default());
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
    let (id_cond, id_args) = in_list("id", &runs);
    let deleted = c
        .execute(&format!("DELETE FROM runs WHERE {id_cond}"), id_args)
        .await?;
    Ok(RetentionBatch {
        runs: deleted,
        last_id: runs.last().cloned(),
    })
}

impl Store {
    /// One retention batch ([`delete_expired_runs`]) in its own write transaction.
    pub async fn delete_expired_runs(
        &self,
        scope: &RetentionScope,
        status: RunStatus,
        finished_before: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<RetentionBatch> {
        let after = after.map(str::to_string);
        on!(self.write, [scope, finished_before], |c| {
            delete_expired_runs(c, &scope, status, &finished_before, after.as_deref(), limit)
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
