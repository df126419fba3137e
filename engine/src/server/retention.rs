//! The run retention task: deletes finished runs past `--run-retention-days` (or their flow's
//! `--run-retention-flow-days`) a batch at a time, archiving each batch first when
//! `--run-archive-dir` is set.
//!
//! Intake shares the store's writer (on SQLite, one thread whose queue intake's group commits
//! wait in), so a batch must hold the writer briefly and leave it alone in between. The batch is
//! read on a reader connection and only its delete is a write ([`crate::store`]'s retention);
//! [`Pace`] sizes each batch from how long the previous delete took, measured from the request to
//! its commit (so time spent queued behind intake counts, and a busy writer makes batches smaller),
//! and pauses a multiple of that time between batches: the pass takes at most about a fifth of
//! the writer's time (and of the time spent archiving), and intake never waits behind more than one
//! short delete.
//!
//! The archive guarantee: a batch is archived and synced before its delete is sent, and the
//! delete takes only runs still in the state they were archived in. A crash or an error between
//! the two leaves the runs in place, to be archived again by the next pass: an archive may hold
//! a run twice, never miss one that was deleted.

use crate::archive::ArchiveError;
use crate::config::ServeConfig;
use crate::store::{
    ArchivedRun, DynStore, RETENTION_BATCH, RetentionScope, StoreError, TERMINAL_STATUSES,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long one delete should keep the store's writer, from request to commit (its sync
/// included, and any wait behind intake's group commits). On SQLite a batch of a few hundred
/// runs takes about this long; a batch of 1,000 took 20 to 70 ms on the bench machine.
const TARGET_WRITE: Duration = Duration::from_millis(10);
/// The smallest batch: below it every run costs more, as each commit rewrites the same index
/// pages and syncs them again.
const MIN_BATCH: u32 = 100;
/// The first batch of a pass, before any delete was timed.
const FIRST_BATCH: u32 = 250;
/// The writer is left to others this many times as long as the last delete took.
const IDLE_RATIO: u32 = 4;
/// The shortest pause between two batches.
const MIN_PAUSE: Duration = Duration::from_millis(5);

/// Why a pass stopped early; the task logs it and tries again at the next interval.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nothing of the batch was deleted.
    #[error("archiving expired runs failed, nothing of the batch was deleted: {0}")]
    Archive(#[from] ArchiveError),
    #[error("archiving expired runs failed, nothing of the batch was deleted: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What run retention keeps, from the validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRetention {
    /// Days for every flow without its own; `None`: such flows keep their runs.
    pub default_days: Option<f64>,
    /// Flows with their own retention (override the default either way).
    pub per_flow: Vec<(String, f64)>,
    /// Time between passes.
    pub every: Duration,
    /// Where deleted runs are archived first (`runs-YYYY-MM-DD.jsonl.gz`, by the run's creation
    /// day); `None`: they are only deleted.
    pub archive: Option<PathBuf>,
}

impl RunRetention {
    /// The retention `config` asks for; `None` when no run is ever to be deleted.
    pub fn from_config(config: &ServeConfig) -> Option<RunRetention> {
        if config.run_retention_days.is_none() && config.run_retention_flow_days.is_empty() {
            return None;
        }
        // The last entry for a flow wins, as with any repeated setting.
        let mut per_flow: Vec<(String, f64)> = Vec::new();
        for (flow, days) in &config.run_retention_flow_days {
            per_flow.retain(|(f, _)| f != flow);
            per_flow.push((flow.clone(), *days));
        }
        Some(RunRetention {
            default_days: config.run_retention_days,
            per_flow,
            every: Duration::from_secs(config.run_retention_interval_secs.max(1)),
            archive: config.run_archive_dir.clone(),
        })
    }

    /// The scopes of one pass with the cut-off (stored RFC 3339 form) of each, as of `now`.
    pub fn scopes(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<(RetentionScope, String)> {
        let cutoff = |days: f64| {
            let ms = (days * 86_400_000.0).round() as i64;
            (now - chrono::Duration::milliseconds(ms))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let mut scopes: Vec<(RetentionScope, String)> = self
            .per_flow
            .iter()
            .map(|(flow, days)| (RetentionScope::Flow(flow.clone()), cutoff(*days)))
            .collect();
        if let Some(days) = self.default_days {
            let except = self.per_flow.iter().map(|(f, _)| f.clone()).collect();
            scopes.push((RetentionScope::AllExcept(except), cutoff(days)));
        }
        scopes
    }
}

/// Batch size and pause of a pass, adapted to how long its deletes take.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pace {
    batch: u32,
}

impl Pace {
    fn new() -> Pace {
        Pace { batch: FIRST_BATCH }
    }

    /// After a delete of `runs` runs that took `took` from request to commit: sizes the next
    /// batch to take about [`TARGET_WRITE`] at the same cost per run (at most doubling it, at
    /// most [`RETENTION_BATCH`]) and returns the pause before it.
    fn after(&mut self, runs: usize, took: Duration) -> Duration {
        let per_run = took.as_secs_f64() / runs.max(1) as f64;
        let fits = (TARGET_WRITE.as_secs_f64() / per_run.max(1e-9)).round() as u64;
        let grown = u64::from(self.batch) * 2;
        self.batch = fits
            .min(grown)
            .clamp(u64::from(MIN_BATCH), u64::from(RETENTION_BATCH)) as u32;
        (took * IDLE_RATIO).max(MIN_PAUSE)
    }
}

/// One pass: every scope, batch after batch until none is left, stopping early on shutdown.
/// Returns how many runs were deleted.
pub async fn pass(
    store: &DynStore,
    retention: &RunRetention,
    shutdown: &watch::Receiver<bool>,
) -> Result<u64, RetentionError> {
    let mut total = 0;
    let mut pace = Pace::new();
    for (scope, cutoff) in retention.scopes(chrono::Utc::now()) {
        for status in TERMINAL_STATUSES {
            let mut after: Option<String> = None;
            loop {
                if *shutdown.borrow() {
                    return Ok(total);
                }
                let runs = store
                    .expired_runs(&scope, status, &cutoff, after.as_deref(), pace.batch)
                    .await?;
                let Some(last) = runs.last() else {
                    break;
                };
                after = Some(last.id.clone());
                let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
                let archiving = Instant::now();
                if let Some(dir) = &retention.archive {
                    archive(dir.clone(), store.archive_records(runs).await?).await?;
                }
                let archiving = archiving.elapsed();
                let started = Instant::now();
                let deleted = store.delete_expired_runs(&ids, status, &cutoff).await?;
                // Reading, encoding and compressing the archive is CPU intake shares on a small
                // machine: the pause covers it at the same ratio as the delete (batch sizes still
                // follow the delete alone, the writer's cost).
                let pause = pace.after(ids.len(), started.elapsed()) + archiving * IDLE_RATIO;
                total += deleted;
                crate::metrics::RUNS_DELETED
                    .fetch_add(deleted, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(pause).await;
            }
        }
    }
    Ok(total)
}

/// Appends `runs` to the archive in `dir`, one JSON line each in the file of its creation day,
/// synced, on a blocking thread (encoding and compression are CPU work).
async fn archive(dir: PathBuf, runs: Vec<ArchivedRun>) -> Result<(), RetentionError> {
    tokio::task::spawn_blocking(move || -> Result<(), RetentionError> {
        let lines = runs
            .iter()
            .map(|r| {
                Ok((
                    r.run.created.chars().take(10).collect(),
                    serde_json::to_string(r)?,
                ))
            })
            .collect::<Result<Vec<(String, String)>, serde_json::Error>>()?;
        crate::archive::append_by_day(&dir, "runs", lines)?;
        Ok(())
    })
    .await
    .map_err(ArchiveError::from)?
}

/// Runs a pass now and then every `retention.every`, until shutdown.
pub async fn run_retention_job(
    store: DynStore,
    retention: RunRetention,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match pass(&store, &retention, &shutdown).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "run retention applied"),
            Err(error) => tracing::error!(%error, "run retention failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(retention.every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn retention(default_days: Option<f64>, per_flow: Vec<(String, f64)>) -> RunRetention {
        RunRetention {
            default_days,
            per_flow,
            every: Duration::from_secs(60),
            archive: None,
        }
    }

    #[test]
    fn per_flow_scopes_come_first_and_are_excluded_from_the_default() {
        let retention = retention(Some(30.0), vec![("f1".into(), 0.5)]);
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap();
        assert_eq!(
            retention.scopes(now),
            vec![
                (
                    RetentionScope::Flow("f1".into()),
                    "2026-12-06T00:00:00.000Z".to_string()
                ),
                (
                    RetentionScope::AllExcept(vec!["f1".into()]),
                    "2026-11-06T12:00:00.000Z".to_string()
                ),
            ]
        );
    }

    #[test]
    fn only_per_flow_retention_leaves_other_flows_alone() {
        let scopes = retention(None, vec![("f1".into(), 1.0)]).scopes(chrono::Utc::now());
        assert_eq!(scopes.len(), 1);
        assert_eq!(scopes[0].0, RetentionScope::Flow("f1".into()));
    }

    #[test]
    fn batches_follow_the_cost_of_a_delete_and_pauses_its_length() {
        let ms = Duration::from_millis;
        let mut pace = Pace::new();
        // Cheap deletes: the batch at most doubles per step, up to the cap.
        assert_eq!(pace.batch, FIRST_BATCH);
        assert_eq!(pace.after(FIRST_BATCH as usize, ms(1)), MIN_PAUSE);
        assert_eq!(pace.batch, FIRST_BATCH * 2);
        pace.after(FIRST_BATCH as usize * 2, ms(1));
        assert_eq!(pace.batch, RETENTION_BATCH);
        // A delete that took twice the target halves the batch, and the pause follows it.
        assert_eq!(
            pace.after(1000, TARGET_WRITE * 2),
            TARGET_WRITE * 2 * IDLE_RATIO
        );
        assert_eq!(pace.batch, 500);
        // A writer too slow for the target (busy with intake, slow commits) keeps the minimum.
        pace.after(500, ms(500));
        assert_eq!(pace.batch, MIN_BATCH);
        assert_eq!(pace.after(MIN_BATCH as usize, ms(100)), ms(400));
        assert_eq!(pace.batch, MIN_BATCH);
    }
}
