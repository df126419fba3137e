//! Process metrics for Prometheus, kept and encoded by the Prometheus org's client crate
//! (`prometheus-client`): typed label sets, histograms, and both the Prometheus text format and
//! OpenMetrics text (`GET /metrics` answers with the one the scraper's `Accept` asks for).
//!
//! Two kinds of metric:
//! - **recorded** as things happen ([`Recorded`], one per process, reached through
//!   [`recorded`] by the modules deep in a run: the sandbox, the executor, the delivery worker);
//! - **sampled** at scrape time ([`Sample`]): run queue depth and, per destination, the outbox
//!   backlog, its oldest entry's age and the breaker state, read from the store by the handler
//!   (one bounded query), so they are the same in every process and a deleted destination's
//!   series end with it.
//!
//! Label values that come from user data are bounded: a webhook call is labelled with its flow
//! id only once the flow was found (every 404 counts under [`UNKNOWN_FLOW`]), and a deleted flow
//! or destination's series are removed ([`Metrics::forget_flow`], [`Metrics::forget_destination`]).
//! Plugins are labelled by name without version.

use crate::store::{DeliveryNext, DestinationBacklog, RunStatus};
use crate::supervise::Tasks;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// New group keys a `threshold` step refused because it held the most keys allowed
/// (`hookflow_detection_key_limit_total`): process-wide, incremented by [`crate::detect`].
pub static DETECTION_KEY_LIMIT_HITS: AtomicU64 = AtomicU64::new(0);

/// Events `threshold` steps saw too late to count (`hookflow_detection_late_events_total`).
pub static DETECTION_LATE_EVENTS: AtomicU64 = AtomicU64::new(0);

/// Runs run retention deleted in this process (`hookflow_runs_deleted_total`).
pub static RUNS_DELETED: AtomicU64 = AtomicU64::new(0);

/// The `flow` label of a webhook call whose flow was not found (or not looked up): one series
/// for every unknown id, so calls to made-up ids cannot grow the label set. Flow ids are
/// UUIDs, so no real flow has this id.
pub const UNKNOWN_FLOW: &str = "unknown";

/// Bucket bounds in seconds for run and step durations: 5 ms to 5 minutes (the longest step
/// timeout is minutes, most steps take milliseconds).
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The most destinations sampled per scrape ([`crate::store::Store::delivery_backlog`]).
pub const MAX_SAMPLED_DESTINATIONS: u32 = 1_000;

/// The most pending entries counted per destination per scrape: past it the backlog gauge
/// shows this number, so a scrape never counts an unbounded queue.
pub const MAX_COUNTED_BACKLOG: u32 = 100_000;

/// The `outcome` label values of `hookflow_events_total`.
const EVENT_OUTCOMES: [&str; 5] = [
    "accepted",
    "duplicate",
    "rejected_auth",
    "rejected_body",
    "rejected_size",
];

/// Why intake refused an event, for `hookflow_events_total{outcome}`.
#[derive(Debug, Clone, Copy)]
pub enum Rejection {
    Auth,
    Body,
    Size,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    flow: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    destination: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationStateLabels {
    destination: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: &'static str,
}

type Histograms<S> = Family<S, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// What a delivery attempt led to, as its `outcome` label.
const DELIVERY_OUTCOMES: [&str; 3] = ["delivered", "retrying", "failed"];

fn delivery_outcome(next: &DeliveryNext) -> &'static str {
    match next {
        DeliveryNext::Delivered => DELIVERY_OUTCOMES[0],
        DeliveryNext::Retry { .. } => DELIVERY_OUTCOMES[1],
        DeliveryNext::Failed => DELIVERY_OUTCOMES[2],
    }
}

/// The metrics recorded as things happen: the registry and handles on its families (each
/// handle shares its family's storage with the registry).
#[derive(Debug)]
pub struct Recorded {
    registry: Registry,
    webhook_requests: Family<WebhookLabels, Counter>,
    /// `hookflow_events_total` by [`EVENT_OUTCOMES`]: handles on the family's series, taken
    /// once, so counting an event is one atomic increment and no lookup.
    events: [Counter; 5],
    runs_finished: Family<StatusLabels, Counter>,
    run_duration: Histograms<StatusLabels>,
    step_duration: Histograms<PluginLabels>,
    delivery_attempts: Family<DeliveryLabels, Counter>,
    sandbox_failures: Family<KindLabels, Counter>,
}

/// Registers `metric` under `name` and hands back the caller's handle on it (the two share
/// their storage).
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Recorded {
    fn default() -> Recorded {
        let mut registry = Registry::default();
        let r = &mut registry;
        let webhook_requests = registered(
            r,
            "hookflow_webhook_requests",
            "Webhook calls answered, by flow id and HTTP status code (unknown flows under flow=\"unknown\")",
            Family::default(),
        );
        let events: Family<OutcomeLabels, Counter> = registered(
            r,
            "hookflow_events",
            "Webhook events by outcome",
            Family::default(),
        );
        let runs_finished = registered(
            r,
            "hookflow_runs_finished",
            "Runs finished by this process, by status",
            Family::default(),
        );
        let run_duration = registered(
            r,
            "hookflow_run_duration_seconds",
            "Execution time of runs finished by this process, by status",
            Family::new_with_constructor(duration_histogram as fn() -> Histogram),
        );
        let step_duration = registered(
            r,
            "hookflow_step_duration_seconds",
            "Time of each plugin call (one per attempt), by plugin name",
            Family::new_with_constructor(duration_histogram as fn() -> Histogram),
        );
        let delivery_attempts = registered(
            r,
            "hookflow_delivery_attempts",
            "Delivery attempts to event destinations, by destination id and outcome (delivered, retrying, failed)",
            Family::default(),
        );
        let sandbox_failures = registered(
            r,
            "hookflow_sandbox_failures",
            "Plugin calls the sandbox stopped, by kind (trap, timeout, memory_limit)",
            Family::default(),
        );
        // Every outcome and final status from the start, so a rate over them has a series
        // to start from and a scraper can tell "none yet" from "not exported".
        let events =
            EVENT_OUTCOMES.map(|outcome| events.get_or_create_owned(&OutcomeLabels { outcome }));
        for status in RunStatus::ALL.iter().filter(|s| s.is_terminal()) {
            let _ = runs_finished.get_or_create(&StatusLabels {
                status: status.as_str(),
            });
        }
        Recorded {
            registry,
            webhook_requests,
            events,
            runs_finished,
            run_duration,
            step_duration,
            delivery_attempts,
            sandbox_failures,
        }
    }
}

static RECORDED: LazyLock<Arc<Recorded>> = LazyLock::new(Default::default);

/// This process's recorded metrics.
pub fn recorded() -> &'static Recorded {
    &RECORDED
}

impl Recorded {
    /// A webhook call answered with `code`; `flow` is its id when the flow was found, `None`
    /// otherwise (counted under [`UNKNOWN_FLOW`]).
    pub fn webhook_answered(&self, flow: Option<&str>, code: u16) {
        let labels = WebhookLabels {
            flow: flow.unwrap_or(UNKNOWN_FLOW).to_string(),
            code,
        };
        self.webhook_requests.get_or_create(&labels).inc();
    }

    pub fn event_accepted(&self, duplicate: bool) {
        self.events[usize::from(duplicate)].inc();
    }

    pub fn event_rejected(&self, why: Rejection) {
        let index = match why {
            Rejection::Auth => 2,
            Rejection::Body => 3,
            Rejection::Size => 4,
        };
        self.events[index].inc();
    }

    /// A run this process finished (its result recorded), with how long it executed.
    pub fn run_finished(&self, status: RunStatus, duration: Duration) {
        let labels = StatusLabels {
            status: status.as_str(),
        };
        self.runs_finished.get_or_create(&labels).inc();
        self.run_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
    }

    /// One call of a plugin (one attempt of a step), however it ended.
    pub fn plugin_called(&self, plugin: &str, duration: Duration) {
        let labels = PluginLabels {
            plugin: plugin.to_string(),
        };
        self.step_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
    }

    /// One delivery attempt to a destination, by what happens next.
    pub fn delivery_attempted(&self, destination: &str, next: &DeliveryNext) {
        let labels = DeliveryLabels {
            destination: destination.to_string(),
            outcome: delivery_outcome(next),
        };
        self.delivery_attempts.get_or_create(&labels).inc();
    }

    /// A plugin call the sandbox stopped at its timeout.
    pub fn sandbox_timed_out(&self) {
        self.sandbox_failure("timeout");
    }

    /// A plugin call that trapped; `memory_limit` when it had asked for more memory than
    /// allowed (the trap is how the guest sees the refusal).
    pub fn sandbox_trapped(&self, memory_limit: bool) {
        self.sandbox_failure(if memory_limit { "memory_limit" } else { "trap" });
    }

    fn sandbox_failure(&self, kind: &'static str) {
        self.sandbox_failures
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    /// Drops a deleted flow's webhook series (every status code it could have answered).
    fn forget_flow(&self, flow: &str) {
        let mut labels = WebhookLabels {
            flow: flow.to_string(),
            code: 0,
        };
        for code in 100..600 {
            labels.code = code;
            self.webhook_requests.remove(&labels);
        }
    }

    /// Drops a deleted destination's delivery series.
    fn forget_destination(&self, destination: &str) {
        for outcome in DELIVERY_OUTCOMES {
            self.delivery_attempts.remove(&DeliveryLabels {
                destination: destination.to_string(),
                outcome,
            });
        }
    }
}

/// What `/metrics` reads at scrape time.
#[derive(Debug, Default)]
pub struct Sample {
    /// Runs QUEUED and RUNNING in the store (all processes).
    pub queued: i64,
    pub running: i64,
    /// Runs executing in this process.
    pub in_flight: usize,
    /// Per destination: backlog, oldest pending entry, breaker state
    /// ([`crate::store::Store::delivery_backlog`]).
    pub destinations: Vec<DestinationBacklog>,
    /// Milliseconds since the epoch at the scrape, for ages and pauses.
    pub now_ms: i64,
}

/// The exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4: what `curl` and most tools get.
    Prometheus,
    /// OpenMetrics 1.0 text, when `Accept` names `application/openmetrics-text` (Prometheus
    /// asks for it first).
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub fn from_accept(accept: Option<&str>) -> Format {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The server's metrics: what this process recorded, and its supervised tasks.
pub struct Metrics {
    recorded: &'static Recorded,
    /// Supervised background tasks: restart counters, and the health `/healthz` reports.
    pub tasks: Arc<Tasks>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            recorded: recorded(),
            tasks: Arc::default(),
        }
    }
}

impl std::ops::Deref for Metrics {
    type Target = Recorded;

    fn deref(&self) -> &Recorded {
        self.recorded
    }
}

impl Metrics {
    /// Drops a deleted flow's series.
    pub fn forget_flow(&self, flow: &str) {
        self.recorded.forget_flow(flow);
    }

    /// Drops a deleted destination's series (its sampled ones end with it by themselves).
    pub fn forget_destination(&self, destination: &str) {
        self.recorded.forget_destination(destination);
    }

    /// Drops a plugin's step series once no version of it is installed any more.
    pub fn forget_plugin(&self, plugin: &str) {
        self.recorded.step_duration.remove(&PluginLabels {
            plugin: plugin.to_string(),
        });
    }

    /// Every metric in `format`: the recorded ones, then what this scrape sampled.
    pub fn render(&self, sample: &Sample, format: Format) -> String {
        let sampled = sampled_registry(sample, &self.tasks);
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = match format {
            Format::Prometheus => {
                use prometheus_client::encoding::prometheus_text::encode;
                encode(&mut out, &self.recorded.registry).and_then(|()| encode(&mut out, &sampled))
            }
            Format::OpenMetrics => {
                use prometheus_client::encoding::text::{encode_eof, encode_registry};
                encode_registry(&mut out, &self.recorded.registry)
                    .and_then(|()| encode_registry(&mut out, &sampled))
                    .and_then(|()| encode_eof(&mut out))
            }
        };
        out
    }
}

/// The breaker state of a destination, as the one-hot `state` label of
/// `hookflow_destination_state`.
fn destination_state(d: &DestinationBacklog, now_ms: i64) -> &'static str {
    if !d.enabled {
        "disabled"
    } else if d.paused_until.is_some_and(|until| until > now_ms) {
        "paused"
    } else {
        "delivering"
    }
}

const DESTINATION_STATES: [&str; 3] = ["delivering", "paused", "disabled"];

/// A registry built for one scrape: the sampled gauges, the process-wide atomics of modules
/// that count without a handle, and the supervised tasks.
fn sampled_registry(sample: &Sample, tasks: &Tasks) -> Registry {
    let mut registry = Registry::default();
    for (name, help, value) in [
        (
            "hookflow_detection_key_limit",
            "New group keys threshold steps refused: the step held the most keys allowed",
            &DETECTION_KEY_LIMIT_HITS,
        ),
        (
            "hookflow_detection_late_events",
            "Events threshold steps saw more than a window late and did not count",
            &DETECTION_LATE_EVENTS,
        ),
        (
            "hookflow_runs_deleted",
            "Finished runs run retention deleted (with their step results and events)",
            &RUNS_DELETED,
        ),
    ] {
        let counter: Counter = Counter::default();
        counter.inc_by(value.load(Ordering::Relaxed));
        registry.register(name, help, counter);
    }

    let runs = Family::<StatusLabels, Gauge>::default();
    runs.get_or_create(&StatusLabels { status: "QUEUED" })
        .set(sample.queued);
    runs.get_or_create(&StatusLabels { status: "RUNNING" })
        .set(sample.running);
    registry.register("hookflow_runs", "Runs in live states (all processes)", runs);
    let in_flight: Gauge = Gauge::default();
    in_flight.set(i64::try_from(sample.in_flight).unwrap_or(i64::MAX));
    registry.register(
        "hookflow_runs_in_flight",
        "Runs executing in this process",
        in_flight,
    );

    let backlog = Family::<DestinationLabels, Gauge>::default();
    let oldest = Family::<DestinationLabels, Gauge<f64, AtomicU64>>::default();
    let state = Family::<DestinationStateLabels, Gauge>::default();
    for d in &sample.destinations {
        let labels = DestinationLabels {
            destination: d.id.clone(),
        };
        backlog.get_or_create(&labels).set(d.pending);
        let age_ms = d
            .oldest_pending_ms
            .map_or(0, |created| sample.now_ms.saturating_sub(created).max(0));
        oldest.get_or_create(&labels).set(age_ms as f64 / 1000.0);
        let current = destination_state(d, sample.now_ms);
        for s in DESTINATION_STATES {
            state
                .get_or_create(&DestinationStateLabels {
                    destination: d.id.clone(),
                    state: s,
                })
                .set(i64::from(s == current));
        }
    }
    registry.register(
        "hookflow_outbox_pending",
        "Events waiting to be delivered to a destination (counted up to 100000)",
        backlog,
    );
    registry.register(
        "hookflow_outbox_oldest_pending_age_seconds",
        "Age of a destination's oldest undelivered event (0 when none waits)",
        oldest,
    );
    registry.register(
        "hookflow_destination_state",
        "A destination's delivery state: 1 for its current state (delivering, paused by the breaker, disabled), 0 for the others",
        state,
    );

    let restarts = Family::<TaskLabels, Counter>::default();
    let up = Family::<TaskLabels, Gauge>::default();
    for task in tasks.snapshot() {
        let labels = TaskLabels { task: task.name };
        restarts.get_or_create(&labels).inc_by(task.restarts);
        up.get_or_create(&labels).set(i64::from(!task.down));
    }
    registry.register(
        "hookflow_background_task_restarts",
        "Restarts of a background task after it panicked or ended early",
        restarts,
    );
    registry.register(
        "hookflow_background_task_up",
        "Whether a background task is running (0 while it waits for a restart)",
        up,
    );
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Metrics {
        Metrics {
            recorded: Box::leak(Box::default()),
            tasks: Arc::default(),
        }
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().expect("a number"))
    }

    #[test]
    fn renders_recorded_and_sampled_metrics() {
        let m = fresh();
        m.event_accepted(false);
        m.event_accepted(true);
        m.webhook_answered(Some("flow-1"), 202);
        m.webhook_answered(None, 404);
        m.webhook_answered(None, 404);
        m.run_finished(RunStatus::Failed, Duration::from_millis(30));
        m.plugin_called("http", Duration::from_millis(2));
        m.delivery_attempted("dest-1", &DeliveryNext::Retry { at_ms: 1 });
        m.sandbox_trapped(true);
        let sample = Sample {
            queued: 3,
            running: 1,
            in_flight: 1,
            destinations: vec![DestinationBacklog {
                id: "dest-1".into(),
                pending: 7,
                oldest_pending_ms: Some(1_000),
                enabled: true,
                paused_until: Some(10_000),
            }],
            now_ms: 4_500,
        };
        let text = m.render(&sample, Format::Prometheus);
        for (series, expected) in [
            ("hookflow_events_total{outcome=\"accepted\"}", 1.0),
            ("hookflow_events_total{outcome=\"duplicate\"}", 1.0),
            (
                "hookflow_webhook_requests_total{flow=\"flow-1\",code=\"202\"}",
                1.0,
            ),
            (
                "hookflow_webhook_requests_total{flow=\"unknown\",code=\"404\"}",
                2.0,
            ),
            ("hookflow_runs_finished_total{status=\"FAILED\"}", 1.0),
            (
                "hookflow_run_duration_seconds_bucket{status=\"FAILED\",le=\"0.025\"}",
                0.0,
            ),
            (
                "hookflow_run_duration_seconds_bucket{status=\"FAILED\",le=\"0.05\"}",
                1.0,
            ),
            (
                "hookflow_run_duration_seconds_count{status=\"FAILED\"}",
                1.0,
            ),
            ("hookflow_step_duration_seconds_count{plugin=\"http\"}", 1.0),
            (
                "hookflow_delivery_attempts_total{destination=\"dest-1\",outcome=\"retrying\"}",
                1.0,
            ),
            (
                "hookflow_sandbox_failures_total{kind=\"memory_limit\"}",
                1.0,
            ),
            ("hookflow_runs{status=\"QUEUED\"}", 3.0),
            ("hookflow_runs{status=\"RUNNING\"}", 1.0),
            ("hookflow_runs_in_flight", 1.0),
            ("hookflow_outbox_pending{destination=\"dest-1\"}", 7.0),
            (
                "hookflow_outbox_oldest_pending_age_seconds{destination=\"dest-1\"}",
                3.5,
            ),
            (
                "hookflow_destination_state{destination=\"dest-1\",state=\"paused\"}",
                1.0,
            ),
            (
                "hookflow_destination_state{destination=\"dest-1\",state=\"delivering\"}",
                0.0,
            ),
        ] {
            assert_eq!(value(&text, series), Some(expected), "{series} in\n{text}");
        }
        assert!(text.contains("# TYPE hookflow_run_duration_seconds histogram"));
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn openmetrics_when_asked_for_and_ends_with_eof() {
        let m = fresh();
        m.event_accepted(false);
        let accept =
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3";
        let format = Format::from_accept(Some(accept));
        assert_eq!(format, Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        let text = m.render(&Sample::default(), format);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("# TYPE hookflow_events counter"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn deleted_flows_and_destinations_leave_no_series() {
        let m = fresh();
        m.webhook_answered(Some("gone"), 202);
        m.webhook_answered(Some("gone"), 401);
        m.webhook_answered(Some("kept"), 202);
        m.delivery_attempted("gone-dest", &DeliveryNext::Delivered);
        m.delivery_attempted("gone-dest", &DeliveryNext::Failed);
        m.forget_flow("gone");
        m.forget_destination("gone-dest");
        let text = m.render(&Sample::default(), Format::Prometheus);
        assert!(!text.contains("\"gone"), "{text}");
        assert!(text.contains("flow=\"kept\""), "{text}");
    }

    #[test]
    fn breaker_state_follows_enabled_and_pause() {
        let mut d = DestinationBacklog {
            id: "d".into(),
            pending: 0,
            oldest_pending_ms: None,
            enabled: true,
            paused_until: Some(100),
        };
        assert_eq!(destination_state(&d, 50), "paused");
        assert_eq!(destination_state(&d, 150), "delivering");
        d.enabled = false;
        assert_eq!(destination_state(&d, 50), "disabled");
    }

    /// The intake path's metric recording, this crate against the plain atomics it replaced
    /// (`bench/RESULTS.md`). Run in release:
    /// `cargo test --release -p hookflow --lib metrics::tests::intake_recording_cost -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn intake_recording_cost() {
        use std::hint::black_box;
        use std::time::Instant;
        const N: u32 = 2_000_000;
        let flow = "0193c5a2-7a3e-7b21-9f3c-1d2e3f405162";
        // Before: one relaxed increment per accepted event (the outcome counter; the old code
        // had no per-flow counter). The new path is measured without and with the per-flow
        // counter (a label lookup: hashing the flow id, a read lock, the id copied).
        let old = AtomicU64::new(0);
        let m = fresh();
        let mut best = (f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..5 {
            let started = Instant::now();
            for _ in 0..N {
                black_box(&old).fetch_add(1, Ordering::Relaxed);
            }
            let atomics = started.elapsed().as_nanos() as f64 / f64::from(N);
            let started = Instant::now();
            for _ in 0..N {
                m.event_accepted(black_box(false));
            }
            let outcome = started.elapsed().as_nanos() as f64 / f64::from(N);
            let started = Instant::now();
            for _ in 0..N {
                m.event_accepted(black_box(false));
                m.webhook_answered(Some(black_box(flow)), 202);
            }
            let whole = started.elapsed().as_nanos() as f64 / f64::from(N);
            best = (best.0.min(atomics), best.1.min(outcome), best.2.min(whole));
        }
        println!(
            "per accepted event: old atomic {:.2} ns; new outcome counter {:.2} ns ({:.1}x); \
             new outcome + per-flow counter {:.2} ns ({:.1}x)",
            best.0,
            best.1,
            best.1 / best.0,
            best.2,
            best.2 / best.0
        );
    }
}
