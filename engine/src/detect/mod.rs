//! Detections over time: the `threshold` step's sliding windows ([`window`], pure), where
//! their state lives ([`WindowStates`]: the store for the server, a scratch map for test runs,
//! replays and local CLI runs), and the event facts a window needs (its own time, its
//! identity).

pub mod window;

use crate::store::{DynStore, WindowRefusal, WindowWrite};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
pub use window::{KeyState, Observation, Verdict, WindowSpec};

/// Live group keys one `threshold` step may hold; a new key beyond it fails the step (and
/// counts in `hookflow_detection_key_limit_total`) instead of growing the store without bound.
pub const MAX_KEYS_PER_STEP: u64 = 100_000;

/// Longest group key, in bytes (longer keys are refused with the step's error).
pub const MAX_KEY_BYTES: usize = 512;

/// Why a window could not count an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    #[error(
        "the step already counts {0} group keys, the most allowed; this event's new key was not counted"
    )]
    KeyLimit(u64),
    #[error("group key is {0} bytes; at most {MAX_KEY_BYTES} are allowed")]
    KeyTooLong(usize),
    #[error("window state unavailable: {0}")]
    Unavailable(String),
}

/// Which step's window an observation belongs to.
#[derive(Debug, Clone, Copy)]
pub struct WindowId<'a> {
    pub flow_id: &'a str,
    pub step: &'a str,
    pub key: &'a str,
}

/// Where `threshold` steps keep their per-key state.
#[async_trait]
pub trait WindowStates: Send + Sync {
    /// Counts `obs` into the key's window and says what it did.
    async fn observe(
        &self,
        id: WindowId<'_>,
        spec: WindowSpec,
        obs: Observation,
    ) -> Result<Verdict, DetectError>;
}

/// Windows in the store: shared by every process, atomic per key.
pub struct StoreWindows {
    store: DynStore,
    /// Observations so far, to sweep expired state of every flow now and then.
    seen: std::sync::atomic::AtomicU64,
}

/// Every this many observations a process deletes up to [`SWEEP_BATCH`] expired key states
/// of any flow (a step deletes its own expired keys whenever it sees a new key; this catches
/// steps that stopped receiving events).
const SWEEP_EVERY: u64 = 4096;
const SWEEP_BATCH: i64 = 1000;

impl StoreWindows {
    pub fn new(store: DynStore) -> StoreWindows {
        StoreWindows {
            store,
            seen: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn sweep_now_and_then(&self) {
        if self.seen.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.delete_expired_windows(SWEEP_BATCH).await {
                tracing::warn!(%error, "sweeping expired threshold state failed; the next sweep retries");
            }
        });
    }
}

#[async_trait]
impl WindowStates for StoreWindows {
    async fn observe(
        &self,
        id: WindowId<'_>,
        spec: WindowSpec,
        obs: Observation,
    ) -> Result<Verdict, DetectError> {
        check_key(id.key)?;
        self.sweep_now_and_then();
        let now = obs.now_ms;
        let written = self
            .store
            .window_update(
                (id.flow_id, id.step, id.key),
                now,
                MAX_KEYS_PER_STEP,
                move |text| {
                    // A state this version cannot read (written by a newer one) starts over
                    // rather than failing every run of the step.
                    let mut state: KeyState = text
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default();
                    let verdict = window::observe(&mut state, &spec, obs);
                    WindowWrite {
                        state: serde_json::to_string(&state).unwrap_or_default(),
                        expires_at: state.expires_at(&spec),
                        outcome: verdict,
                    }
                },
            )
            .await
            .map_err(|e| DetectError::Unavailable(e.to_string()))?;
        match written {
            Ok(verdict) => Ok(counted(verdict)),
            Err(WindowRefusal::KeyLimit(max)) => Err(key_limit(max, id)),
        }
    }
}

/// Windows in process memory, thrown away with the value: test runs, replays, local runs.
#[derive(Default)]
pub struct ScratchWindows {
    keys: Mutex<HashMap<(String, String), HashMap<String, KeyState>>>,
}

impl ScratchWindows {
    /// Counts `obs` synchronously (replays call this once per event; no store, no await).
    pub fn observe_now(
        &self,
        id: WindowId<'_>,
        spec: WindowSpec,
        obs: Observation,
    ) -> Result<Verdict, DetectError> {
        check_key(id.key)?;
        let mut all = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let step = all
            .entry((id.flow_id.to_owned(), id.step.to_owned()))
            .or_default();
        if !step.contains_key(id.key) {
            let now = obs.now_ms;
            step.retain(|_, state| state.expires_at(&spec) > now);
            if step.len() as u64 >= MAX_KEYS_PER_STEP {
                return Err(key_limit(MAX_KEYS_PER_STEP, id));
            }
        }
        let state = step.entry(id.key.to_owned()).or_default();
        Ok(counted(window::observe(state, &spec, obs)))
    }
}

#[async_trait]
impl WindowStates for ScratchWindows {
    async fn observe(
        &self,
        id: WindowId<'_>,
        spec: WindowSpec,
        obs: Observation,
    ) -> Result<Verdict, DetectError> {
        self.observe_now(id, spec, obs)
    }
}

fn check_key(key: &str) -> Result<(), DetectError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(DetectError::KeyTooLong(key.len()));
    }
    Ok(())
}

fn counted(verdict: Verdict) -> Verdict {
    if verdict.late {
        crate::metrics::DETECTION_LATE_EVENTS.fetch_add(1, Ordering::Relaxed);
    }
    verdict
}

fn key_limit(max: u64, id: WindowId<'_>) -> DetectError {
    crate::metrics::DETECTION_KEY_LIMIT_HITS.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        flow_id = id.flow_id,
        step = id.step,
        max_keys = max,
        "threshold step refused a new group key: it already counts the most keys allowed"
    );
    DetectError::KeyLimit(max)
}

/// Body fields tried, in order, for an event's own time: Activepieces `created`, CloudEvents
/// (Auth0 Event Streams) `time`, GitLab `created_at`, then common spellings, and Auth0 Log
/// Streams' `data.date`.
const TIME_FIELDS: [&[&str]; 7] = [
    &["created"],
    &["time"],
    &["created_at"],
    &["timestamp"],
    &["date"],
    &["data", "date"],
    &["data", "created_at"],
];

/// The event's own time from the first of the usual body fields that holds one.
pub fn default_event_time(body: &Value) -> Option<i64> {
    TIME_FIELDS.iter().find_map(|path| {
        let value = path.iter().try_fold(body, |v, key| v.get(key))?;
        parse_time(value)
    })
}

/// A time as milliseconds since the epoch: RFC 3339 text (`2026-03-01T10:00:00Z`, with an
/// offset or fractional seconds), `YYYY-MM-DD HH:MM:SS` taken as UTC, or a number of epoch
/// seconds (below 10^11) or milliseconds, also when written as text.
pub fn parse_time(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => epoch_number(n.as_f64()?),
        Value::String(text) => {
            let text = text.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(text) {
                return Some(t.timestamp_millis());
            }
            for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
                if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
                    return Some(t.and_utc().timestamp_millis());
                }
            }
            epoch_number(text.parse::<f64>().ok()?)
        }
        _ => None,
    }
}

fn epoch_number(n: f64) -> Option<i64> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let ms = if n < 1e11 { n * 1000.0 } else { n };
    // Beyond year 9999 is not a time anyone sends.
    (ms < 253_402_300_800_000.0).then_some(ms as i64)
}

/// The event's identity for a window when the step names none: the body's `id` (Activepieces,
/// GitLab, CloudEvents) or `log_id` (Auth0 Log Streams), the `webhook-id` header (Standard
/// Webhooks), else the run id, so at least a retried run never counts twice.
pub fn default_event_id(trigger: &Value, run_id: &str) -> String {
    let body = &trigger["body"];
    let text = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    text(&body["id"])
        .or_else(|| text(&body["log_id"]))
        .or_else(|| text(&trigger["headers"]["webhook-id"]))
        .unwrap_or_else(|| run_id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_times_come_from_each_products_field() {
        let t = 1_772_359_200_000; // 2026-03-01T10:00:00Z
        for body in [
            json!({"created": "2026-03-01T10:00:00.000Z"}),
            json!({"time": "2026-03-01T11:00:00+01:00"}),
            json!({"created_at": "2026-03-01 10:00:00"}),
            json!({"timestamp": 1_772_359_200}),
            json!({"timestamp": 1_772_359_200_000_i64}),
            json!({"log_id": "9", "data": {"date": "2026-03-01T10:00:00Z"}}),
            json!({"created": "nonsense", "time": "2026-03-01T10:00:00Z"}),
        ] {
            assert_eq!(default_event_time(&body), Some(t), "{body}");
        }
        assert_eq!(default_event_time(&json!({"action": "x"})), None);
        assert_eq!(parse_time(&json!("1772359200")), Some(t));
        assert_eq!(parse_time(&json!(-1)), None);
        assert_eq!(parse_time(&json!(1e300)), None);
        assert_eq!(parse_time(&json!(true)), None);
    }

    #[test]
    fn event_ids_prefer_the_senders_identity() {
        assert_eq!(
            default_event_id(&json!({"body": {"id": "ev1"}}), "run"),
            "ev1"
        );
        assert_eq!(default_event_id(&json!({"body": {"id": 42}}), "run"), "42");
        assert_eq!(
            default_event_id(&json!({"body": {"log_id": "900"}}), "run"),
            "900"
        );
        assert_eq!(
            default_event_id(
                &json!({"body": {}, "headers": {"webhook-id": "msg_1"}}),
                "run"
            ),
            "msg_1"
        );
        assert_eq!(default_event_id(&json!({"body": {"id": ""}}), "run"), "run");
    }

    #[test]
    fn scratch_windows_refuse_long_keys_and_keep_steps_apart() {
        let windows = ScratchWindows::default();
        let spec = WindowSpec {
            window_ms: 60_000,
            threshold: 2,
            suppress_ms: 60_000,
            distinct: false,
        };
        let obs = |id: &str| Observation {
            event_id: id.into(),
            at_ms: 0,
            distinct: None,
            now_ms: 0,
        };
        let id = |step| WindowId {
            flow_id: "f",
            step,
            key: "k",
        };
        assert!(
            !windows
                .observe_now(id("a"), spec, obs("1"))
                .unwrap()
                .crossed
        );
        assert!(
            !windows
                .observe_now(id("b"), spec, obs("2"))
                .unwrap()
                .crossed
        );
        assert!(
            windows
                .observe_now(id("a"), spec, obs("3"))
                .unwrap()
                .crossed
        );
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let err = windows
            .observe_now(
                WindowId {
                    flow_id: "f",
                    step: "a",
                    key: &long,
                },
                spec,
                obs("4"),
            )
            .unwrap_err();
        assert_eq!(err, DetectError::KeyTooLong(MAX_KEY_BYTES + 1));
    }
}
