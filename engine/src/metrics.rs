//! Process metrics in the Prometheus text format. Plain atomics: counting must never slow the
//! hot path or take a lock.

use crate::store::RunStatus;
use crate::supervise::Tasks;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters exported on `/metrics`.
#[derive(Default)]
pub struct Metrics {
    events_accepted: AtomicU64,
    events_duplicate: AtomicU64,
    events_rejected_auth: AtomicU64,
    events_rejected_body: AtomicU64,
    events_rejected_size: AtomicU64,
    runs_finished: [AtomicU64; 6],
    /// Supervised background tasks: restart counters, and the health `/healthz` reports.
    pub tasks: Arc<Tasks>,
}

/// New group keys a `threshold` step refused because it held the most keys allowed
/// (`hookflow_detection_key_limit_total`): process-wide, incremented by [`crate::detect`].
pub static DETECTION_KEY_LIMIT_HITS: AtomicU64 = AtomicU64::new(0);

/// Events `threshold` steps saw too late to count (`hookflow_detection_late_events_total`).
pub static DETECTION_LATE_EVENTS: AtomicU64 = AtomicU64::new(0);

/// Runs run retention deleted in this process (`hookflow_runs_deleted_total`).
pub static RUNS_DELETED: AtomicU64 = AtomicU64::new(0);

/// Why intake refused an event, for the rejection counters.
#[derive(Debug, Clone, Copy)]
pub enum Rejection {
    Auth,
    Body,
    Size,
}

impl Metrics {
    pub fn event_accepted(&self, duplicate: bool) {
        let counter = if duplicate {
            &self.events_duplicate
        } else {
            &self.events_accepted
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn event_rejected(&self, why: Rejection) {
        let counter = match why {
            Rejection::Auth => &self.events_rejected_auth,
            Rejection::Body => &self.events_rejected_body,
            Rejection::Size => &self.events_rejected_size,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn run_finished(&self, status: RunStatus) {
        let index = RunStatus::ALL
            .iter()
            .position(|s| *s == status)
            .unwrap_or(0);
        self.runs_finished[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Renders every metric; `queued`/`running`/`in_flight` are sampled by the caller.
    pub fn render(&self, queued: i64, running: i64, in_flight: usize) -> String {
        let mut out = String::with_capacity(2048);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP hookflow_events_total Webhook events by outcome.\n# TYPE hookflow_events_total counter\n");
        for (outcome, counter) in [
            ("accepted", &self.events_accepted),
            ("duplicate", &self.events_duplicate),
            ("rejected_auth", &self.events_rejected_auth),
            ("rejected_body", &self.events_rejected_body),
            ("rejected_size", &self.events_rejected_size),
        ] {
            let _ = writeln!(
                out,
                "hookflow_events_total{{outcome=\"{outcome}\"}} {}",
                get(counter)
            );
        }
        out.push_str("# HELP hookflow_runs_finished_total Runs finished by this process, by status.\n# TYPE hookflow_runs_finished_total counter\n");
        for (status, counter) in RunStatus::ALL.iter().zip(&self.runs_finished) {
            if status.is_terminal() {
                let _ = writeln!(
                    out,
                    "hookflow_runs_finished_total{{status=\"{status}\"}} {}",
                    get(counter)
                );
            }
        }
        out.push_str("# HELP hookflow_detection_key_limit_total New group keys threshold steps refused: the step held the most keys allowed.\n# TYPE hookflow_detection_key_limit_total counter\n");
        let _ = writeln!(
            out,
            "hookflow_detection_key_limit_total {}",
            get(&DETECTION_KEY_LIMIT_HITS)
        );
        out.push_str("# HELP hookflow_detection_late_events_total Events threshold steps saw more than a window late and did not count.\n# TYPE hookflow_detection_late_events_total counter\n");
        let _ = writeln!(
            out,
            "hookflow_detection_late_events_total {}",
            get(&DETECTION_LATE_EVENTS)
        );
        out.push_str("# HELP hookflow_runs_deleted_total Finished runs run retention deleted (with their step results and events).\n# TYPE hookflow_runs_deleted_total counter\n");
        let _ = writeln!(out, "hookflow_runs_deleted_total {}", get(&RUNS_DELETED));
        out.push_str("# HELP hookflow_runs Runs in live states (all processes).\n# TYPE hookflow_runs gauge\n");
        let _ = writeln!(out, "hookflow_runs{{status=\"QUEUED\"}} {queued}");
        let _ = writeln!(out, "hookflow_runs{{status=\"RUNNING\"}} {running}");
        out.push_str("# HELP hookflow_runs_in_flight Runs executing in this process.\n# TYPE hookflow_runs_in_flight gauge\n");
        let _ = writeln!(out, "hookflow_runs_in_flight {in_flight}");
        self.tasks.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::default();
        m.event_accepted(false);
        m.event_accepted(true);
        m.run_finished(RunStatus::Failed);
        let text = m.render(3, 1, 1);
        assert!(text.contains("hookflow_events_total{outcome=\"accepted\"} 1"));
        assert!(text.contains("hookflow_events_total{outcome=\"duplicate\"} 1"));
        assert!(text.contains("hookflow_runs_finished_total{status=\"FAILED\"} 1"));
        assert!(text.contains("hookflow_runs{status=\"QUEUED\"} 3"));
        assert!(!text.contains("status=\"RUNNING\"} 0\nhookflow_runs_finished"));
    }
}
