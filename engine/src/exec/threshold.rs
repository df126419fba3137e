//! Running a `threshold` step: render its key and event facts, count the event in the step's
//! window (see [`crate::detect`]), record what was counted, and walk `crossed` when the event
//! brought the count to the threshold.

use super::{Executor, RunState, millis, reuse, set_step_context};
use crate::detect::{self, Observation, ScratchWindows, Verdict, WindowId, WindowSpec};
use crate::flow::{ThresholdStep, template};
use crate::store::{Environment, RunStatus, StepKind, StepRecord, StepStatus, epoch_ms};
use chrono::{DateTime, SecondsFormat};
use serde_json::{Value, json};
use std::time::Instant;

impl Executor {
    pub(super) async fn run_threshold(&self, state: &mut RunState<'_>, step: &ThresholdStep) {
        // A retried run reuses what the step counted the first time: the event is in the
        // window already, and recounting it would be a duplicate that never crosses.
        if let Some(prior) = state.prior.get(step.name.as_str())
            && prior.status == StepStatus::Succeeded
        {
            let reused = (*prior).clone();
            let crossed = crossed(reused.output.as_ref());
            reuse(state, reused);
            if crossed {
                self.run_steps(state, &step.crossed).await;
            }
            return;
        }
        let started = Instant::now();
        let req = state.req;
        let key = render_text(&step.group_by, &state.ctx);
        let distinct = step
            .count_distinct
            .as_ref()
            .map(|t| render_text(t, &state.ctx));
        let now_ms = req.clock_ms.unwrap_or_else(epoch_ms);
        let (at_ms, time_source) = match &step.event_time {
            Some(t) => match detect::parse_time(&template::render_str(t, &state.ctx)) {
                Some(at) => (at, "eventTime"),
                None => (now_ms, "arrival (eventTime is not a time)"),
            },
            None => match detect::default_event_time(&req.trigger["body"]) {
                Some(at) => (at, "body"),
                None => (now_ms, "arrival"),
            },
        };
        let event_id = step
            .event_id
            .as_ref()
            .map(|t| render_text(t, &state.ctx))
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| detect::default_event_id(&req.trigger, req.run_id));
        let spec = WindowSpec {
            window_ms: step.window.millis() as i64,
            threshold: step.threshold,
            suppress_ms: step.suppress_ms(),
            distinct: step.count_distinct.is_some(),
        };
        let observation = Observation {
            event_id: event_id.clone(),
            at_ms,
            distinct: distinct.clone(),
            now_ms,
        };
        let id = WindowId {
            flow_id: req.flow_id,
            step: &step.name,
            key: &key,
        };
        let scratch = req.windows.is_none()
            && (req.environment == Environment::Testing || self.windows.is_none());
        let verdict = match (req.windows, &self.windows) {
            (Some(windows), _) => windows.observe(id, spec, observation).await,
            (None, Some(windows)) if !scratch => windows.observe(id, spec, observation).await,
            _ => state
                .scratch_windows
                .get_or_insert_with(ScratchWindows::default)
                .observe_now(id, spec, observation),
        };
        let mut input = json!({
            "key": key,
            "eventId": event_id,
            "eventTime": iso(at_ms),
            "timeSource": time_source,
        });
        if let Some(value) = distinct {
            input["distinctValue"] = json!(value);
        }
        let mut detail = json!({
            "window": step.window.to_string(),
            "threshold": step.threshold,
            "suppressFor": crate::flow::Span::from_millis(spec.suppress_ms as u64).to_string(),
        });
        if scratch {
            detail["note"] = json!(
                "test run: counted in a scratch window that starts empty; replay a sequence of events to try the threshold"
            );
        }
        let (status, output, error) = match verdict {
            Ok(verdict) => (
                StepStatus::Succeeded,
                Some(output(&key, step, &verdict)),
                None,
            ),
            Err(error) => (StepStatus::Failed, None, Some(error.to_string())),
        };
        set_step_context(
            &mut state.ctx,
            &step.name,
            status,
            output.as_ref(),
            error.as_deref(),
        );
        let crossed = crossed(output.as_ref());
        state.steps.push(StepRecord {
            name: step.name.clone(),
            seq: state.steps.len() as i64,
            kind: StepKind::Threshold,
            status,
            input: Some(input),
            output,
            error: error.clone(),
            attempts: 1,
            duration_ms: millis(started.elapsed()),
            detail: Some(detail),
        });
        if let Some(error) = error {
            state.failure = Some((
                RunStatus::Failed,
                format!("step {} failed: {error}", step.name),
            ));
        } else if crossed {
            self.run_steps(state, &step.crossed).await;
        }
    }
}

/// What later steps read as `steps.NAME.output`.
fn output(key: &str, step: &ThresholdStep, v: &Verdict) -> Value {
    json!({
        "crossed": v.crossed,
        "key": key,
        "count": v.count,
        "threshold": step.threshold,
        "windowStart": iso(v.window_start),
        "windowEnd": iso(v.window_end),
        "eventIds": v.event_ids,
        "suppressed": v.suppressed,
        "suppressedSinceLastAlert": v.suppressed_before,
        "duplicate": v.duplicate,
        "late": v.late,
    })
}

fn crossed(output: Option<&Value>) -> bool {
    output
        .and_then(|o| o.get("crossed"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// A template rendered as text: strings as they are, other values as compact JSON, a missing
/// value as empty.
fn render_text(text: &str, ctx: &Value) -> String {
    match template::render_str(text, ctx) {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn iso(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}
