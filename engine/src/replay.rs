//! Replay: a flow run over a sequence of past events, to see what a detection would have
//! fired before it goes live. Events run one after the other in event-time order, as TESTING
//! runs (steps with side effects are skipped; nothing is stored), with every `threshold` step
//! counting in one scratch space that lives only as long as the replay and with the clock set
//! to each event's own time, so a week of history replays in seconds and reports exactly what
//! live runs receiving those events in time would have done.

use crate::detect::{self, ScratchWindows};
use crate::exec::{Executor, RunRequest};
use crate::flow::Flow;
use crate::store::{Environment, RunStatus, Scope, StepKind, StepStatus};
use serde::Serialize;
use serde_json::{Value, json};

/// Most events one replay takes.
pub const MAX_REPLAY_EVENTS: usize = 1_000_000;

/// One alert a replay would have raised.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// The `threshold` step that crossed.
    pub step: String,
    /// Its group key.
    pub key: String,
    /// Events (or distinct values) in the window.
    pub count: u64,
    /// The crossing event's own time (RFC 3339).
    pub at: String,
    /// The events in the window, oldest first (capped).
    pub event_ids: Vec<String>,
    /// Crossings kept quiet since the step's previous alert for this key.
    #[serde(skip_serializing_if = "is_zero")]
    pub suppressed_before: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A step with side effects (a notification, a delivery) that would have run: replays skip
/// them, so this is what the flow would have sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// The step's name and plugin.
    pub step: String,
    pub plugin: String,
    /// The triggering event's own time (RFC 3339) and identity.
    pub at: String,
    pub event_id: String,
}

/// Most actions a report lists; `actionsTotal` counts them all.
pub const MAX_ACTIONS: usize = 1000;

/// What a replay found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Events replayed.
    pub events: usize,
    /// Alerts in the order they would have fired.
    pub alerts: Vec<Alert>,
    /// Side-effect steps that would have run, in order (the first [`MAX_ACTIONS`]).
    pub actions: Vec<Action>,
    pub actions_total: usize,
    /// Runs that did not succeed (a step failed), with the first few reasons.
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub failed_runs: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

/// Most run errors a report lists.
const MAX_ERRORS: usize = 10;

/// Events in event-time order: the body's own time where it has one (see
/// [`detect::default_event_time`]); an event without one keeps its place after the event
/// before it. The sort is stable, so equal times keep the file's order.
pub fn in_event_time_order(events: Vec<Value>) -> Vec<(i64, Value)> {
    let mut last = 0;
    let mut timed: Vec<(i64, Value)> = events
        .into_iter()
        .map(|body| {
            let at = detect::default_event_time(&body).unwrap_or(last);
            last = at;
            (at, body)
        })
        .collect();
    timed.sort_by_key(|(at, _)| *at);
    timed
}

/// Replays `events` (trigger bodies) through `flow`. `progress` is called after each event
/// with (done, total, alerts so far).
pub async fn replay(
    executor: &Executor,
    scope: &Scope,
    flow_id: &str,
    flow: &Flow,
    events: Vec<Value>,
    mut progress: impl FnMut(usize, usize, usize),
) -> ReplayReport {
    let windows = ScratchWindows::default();
    let events = in_event_time_order(events);
    let total = events.len();
    let mut report = ReplayReport {
        events: total,
        ..ReplayReport::default()
    };
    for (index, (at, body)) in events.into_iter().enumerate() {
        // Routers and windows never wait: let other tasks on this runtime thread run now and
        // then during a long replay.
        if index % 256 == 255 {
            tokio::task::yield_now().await;
        }
        let run_id = format!("replay-{}", index + 1);
        let request = RunRequest {
            run_id: &run_id,
            scope,
            flow_id,
            flow,
            trigger: json!({ "body": body, "headers": {} }),
            environment: Environment::Testing,
            attempt: 1,
            prior_steps: Vec::new(),
            live: false,
            clock_ms: Some(at),
            windows: Some(&windows),
            defer_retries: false,
        };
        let result = executor.execute(&request).await;
        for step in &result.steps {
            if step.kind == StepKind::Action && step.status == StepStatus::Skipped {
                report.actions_total += 1;
                if report.actions.len() < MAX_ACTIONS {
                    let detail = step.detail.as_ref();
                    report.actions.push(Action {
                        step: step.name.clone(),
                        plugin: detail
                            .and_then(|d| d["plugin"].as_str())
                            .unwrap_or_default()
                            .to_owned(),
                        at: crate::exec::iso(at),
                        event_id: detect::default_event_id(&request.trigger, &run_id),
                    });
                }
            }
            if step.kind != StepKind::Threshold || step.status != StepStatus::Succeeded {
                continue;
            }
            let Some(output) = &step.output else { continue };
            if output["crossed"] != Value::Bool(true) {
                continue;
            }
            report.alerts.push(Alert {
                step: step.name.clone(),
                key: output["key"].as_str().unwrap_or_default().to_owned(),
                count: output["count"].as_u64().unwrap_or_default(),
                at: step
                    .input
                    .as_ref()
                    .and_then(|i| i["eventTime"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                event_ids: output["eventIds"]
                    .as_array()
                    .map(|ids| {
                        ids.iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                suppressed_before: output["suppressedSinceLastAlert"]
                    .as_u64()
                    .unwrap_or_default(),
            });
        }
        if result.status != RunStatus::Succeeded {
            report.failed_runs += 1;
            if report.errors.len() < MAX_ERRORS {
                report.errors.push(format!(
                    "event {}: {}",
                    index + 1,
                    result.error.unwrap_or_else(|| result.status.to_string())
                ));
            }
        }
        progress(index + 1, total, report.alerts.len());
    }
    report
}

/// Events from JSON Lines text: one JSON value per line, blank lines skipped; a line holding
/// an array contributes each element (an Auth0 Log Streams batch). The error names the line.
pub fn parse_json_lines(text: &str) -> Result<Vec<Value>, String> {
    let mut events = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| format!("line {}: not JSON: {e}", number + 1))?;
        match value {
            Value::Array(items) => events.extend(items),
            other => events.push(other),
        }
        if events.len() > MAX_REPLAY_EVENTS {
            return Err(format!(
                "more than {MAX_REPLAY_EVENTS} events; replay a shorter range"
            ));
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_sort_by_their_own_time_and_untimed_ones_keep_their_place() {
        let events = vec![
            json!({"id": "b", "created": "2026-01-01T10:05:00Z"}),
            json!({"id": "untimed"}),
            json!({"id": "a", "created": "2026-01-01T10:00:00Z"}),
            json!({"id": "c", "time": "2026-01-01T10:10:00Z"}),
        ];
        let order = in_event_time_order(events);
        let ids: Vec<&str> = order
            .iter()
            .map(|(_, e)| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b", "untimed", "c"]);
    }

    #[test]
    fn json_lines_skip_blanks_split_arrays_and_name_bad_lines() {
        let events = parse_json_lines("{\"id\":1}\n\n[{\"id\":2},{\"id\":3}]\n").unwrap();
        assert_eq!(events.len(), 3);
        let err = parse_json_lines("{\"id\":1}\n{oops\n").unwrap_err();
        assert!(err.starts_with("line 2: not JSON"), "{err}");
    }
}
