//! The run retention task: deletes finished runs past `--run-retention-days` (or their flow's
//! `--run-retention-flow-days`) a batch at a time, with a pause between batches so webhook
//! intake, which shares the store's writer, is never queued behind more than one batch.

use crate::config::ServeConfig;
use crate::store::{DynStore, RETENTION_BATCH, RetentionScope, StoreResult, TERMINAL_STATUSES};
use std::time::Duration;
use tokio::sync::watch;

/// Pause between two batches of one pass: lets the intake's writes in between.
const BATCH_PAUSE: Duration = Duration::from_millis(20);

/// What run retention keeps, from the validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRetention {
    /// Days for every flow without its own; `None`: such flows keep their runs.
    pub default_days: Option<f64>,
    /// Flows with their own retention (override the default either way).
    pub per_flow: Vec<(String, f64)>,
    /// Time between passes.
    pub every: Duration,
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

/// One pass: every scope, batch after batch until none is left, stopping early on shutdown.
/// Returns how many runs were deleted.
pub async fn pass(
    store: &DynStore,
    retention: &RunRetention,
    shutdown: &watch::Receiver<bool>,
) -> StoreResult<u64> {
    let mut total = 0;
    for (scope, cutoff) in retention.scopes(chrono::Utc::now()) {
        for status in TERMINAL_STATUSES {
            let mut after: Option<String> = None;
            loop {
                if *shutdown.borrow() {
                    return Ok(total);
                }
                let batch = store
                    .delete_expired_runs(&scope, status, &cutoff, after.as_deref(), RETENTION_BATCH)
                    .await?;
                if batch.last_id.is_none() {
                    break;
                }
                total += batch.runs;
                crate::metrics::RUNS_DELETED
                    .fetch_add(batch.runs, std::sync::atomic::Ordering::Relaxed);
                after = batch.last_id;
                tokio::time::sleep(BATCH_PAUSE).await;
            }
        }
    }
    Ok(total)
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

    #[test]
    fn per_flow_scopes_come_first_and_are_excluded_from_the_default() {
        let retention = RunRetention {
            default_days: Some(30.0),
            per_flow: vec![("f1".into(), 0.5)],
            every: Duration::from_secs(60),
        };
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
        let retention = RunRetention {
            default_days: None,
            per_flow: vec![("f1".into(), 1.0)],
            every: Duration::from_secs(60),
        };
        let scopes = retention.scopes(chrono::Utc::now());
        assert_eq!(scopes.len(), 1);
        assert_eq!(scopes[0].0, RetentionScope::Flow("f1".into()));
    }
}
