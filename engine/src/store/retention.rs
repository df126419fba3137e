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

use super::rows::in_list;
use super::sql::{Conn, Param};
use super::{Store, StoreResult};

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

/// Deletes at most `limit` terminal runs of `scope` finished before `finished_before` (RFC 3339,
/// the stored form) with ids after `after`, and their step results and events, in the caller's
/// transaction. `runs == 0` means the pass is done.
pub async fn delete_expired_runs(
    c: &mut dyn Conn,
    scope: &RetentionScope,
    finished_before: &str,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<RetentionBatch> {
    let mut sql = String::from(
        "SELECT id, event_id FROM runs \
         WHERE status IN ('SUCCEEDED', 'FAILED', 'TIMEOUT', 'CANCELED') \
         AND finished IS NOT NULL AND finished < ?",
    );
    let mut args = vec![Param::from(finished_before)];
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
        finished_before: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<RetentionBatch> {
        let after = after.map(str::to_string);
        on!(self.write, [scope, finished_before], |c| {
            delete_expired_runs(c, &scope, &finished_before, after.as_deref(), limit)
        })
    }
}
