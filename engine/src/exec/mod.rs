//! The executor: walks a flow for one run. Routers evaluate their branches over the run context;
//! action steps render their input and call the sandbox, with retries, timeouts and
//! continue-on-failure. The result is the run's status and a record of every step, which the
//! queue hands to the store.

use crate::flow::hosts::HostPattern;
mod threshold;

pub use threshold::iso;

use crate::detect::WindowStates;
use crate::flow::{ActionStep, Flow, RouterStep, Step, router, template};
use crate::mail::{MailGrant, Mailer, RecipientPattern};
use crate::memory::{FlowMemory, MemoryGrant};
use crate::secrets::{self, REDACTED, Secrets};
use crate::store::{Environment, RunStatus, Scope, StepKind, StepRecord, StepStatus};
use crate::wasm::{Grants, Sandbox, StepContext, StepOutcome};
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Key in a step's `detail` holding the `/sync` response its plugin set (see
/// [`crate::wasm::SyncResponse`]); the webhook API answers with the last one in the run.
pub const SYNC_RESPONSE_KEY: &str = "response";

/// The `/sync` response a run's steps set: the last one wins.
pub fn sync_response(steps: &[StepRecord]) -> Option<crate::wasm::SyncResponse> {
    steps.iter().rev().find_map(|step| {
        let value = step.detail.as_ref()?.get(SYNC_RESPONSE_KEY)?;
        serde_json::from_value(value.clone()).ok()
    })
}

/// Step deadline when a step sets none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest retry backoff a run with [`RunRequest::defer_retries`] still waits out in its worker
/// slot. Anything longer gives the slot back ([`RunResult::retry_at_ms`]): going back to the
/// queue costs a store write, a claim and the replay of the reused steps, which is worth it only
/// when the wait is longer than that; two runs waiting out minutes-long backoffs with two
/// workers would otherwise stop every other flow.
pub const DEFER_RETRY_AFTER: Duration = Duration::from_millis(250);

/// Key in a failed step's `detail` while its run waits in the queue for the step's next attempt:
/// `{"at": <ms since the epoch>, "firstAttempt": <the first attempt counted against
/// `retry.maxAttempts`>}`, so the resumed run goes on with the same attempt budget.
pub const DEFERRED_RETRY_KEY: &str = "deferredRetry";

/// What the executor needs to run a flow once.
pub struct RunRequest<'a> {
    pub run_id: &'a str,
    /// Tenant whose secrets the run may use.
    pub scope: &'a Scope,
    pub flow_id: &'a str,
    pub flow: &'a Flow,
    /// `{"body": ..., "headers": ...}`: the event as templates see it under `trigger`.
    pub trigger: Value,
    pub environment: Environment,
    /// 1 for the first execution; higher after a crash recovery or a manual retry.
    pub attempt: u32,
    /// Steps of an earlier attempt: succeeded action steps are reused, not run again.
    pub prior_steps: Vec<StepRecord>,
    /// In test runs, run steps whose plugin has side effects instead of skipping them.
    pub live: bool,
    /// The arrival time `threshold` steps judge lateness by (ms since the epoch); the wall
    /// clock when `None`. A replay sets each event's own time.
    pub clock_ms: Option<i64>,
    /// Where `threshold` steps count, instead of the executor's own windows (a replay's
    /// scratch space). Test runs without it count in a fresh scratch space of their own.
    pub windows: Option<&'a dyn WindowStates>,
    /// Stop at a retry whose backoff is longer than [`DEFER_RETRY_AFTER`] and report when to go
    /// on ([`RunResult::retry_at_ms`]) instead of sleeping: set for runs the queue executes, so
    /// a waiting retry gives its worker slot back. Test runs, replays and CLI runs have a caller
    /// waiting for the whole result and nobody to resume them; they sleep.
    pub defer_retries: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub status: RunStatus,
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
    pub duration_ms: f64,
}

impl RunResult {
    /// When the run stopped to wait for a step's next attempt (only with
    /// [`RunRequest::defer_retries`]; `status` is then QUEUED): resume it at this time (ms since
    /// the epoch) with `steps` as its prior steps. Read from the waiting step's record
    /// ([`DEFERRED_RETRY_KEY`]), which is what the resumed run goes on from.
    pub fn retry_at_ms(&self) -> Option<i64> {
        if self.status != RunStatus::Queued {
            return None;
        }
        self.steps.iter().rev().find_map(|step| {
            step.detail
                .as_ref()?
                .get(DEFERRED_RETRY_KEY)?
                .get("at")?
                .as_i64()
        })
    }
}

/// Runs flows. Cheap to share; one per process.
pub struct Executor {
    sandbox: Arc<Sandbox>,
    secrets: Option<Arc<Secrets>>,
    /// `HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS`, read once.
    allow_local: bool,
    /// The SMTP client behind the `mail` capability; `None` when e-mail is not configured.
    mailer: Option<Arc<Mailer>>,
    /// Where the `memory` capability keeps keys.
    memory: Option<Arc<dyn FlowMemory>>,
    /// Where `threshold` steps of live runs count; without it, in a scratch space per run.
    windows: Option<Arc<dyn WindowStates>>,
}

/// State of one run while it executes.
struct RunState<'a> {
    req: &'a RunRequest<'a>,
    ctx: Value,
    steps: Vec<StepRecord>,
    prior: HashMap<&'a str, &'a StepRecord>,
    /// Set when a step failed the run; stops the walk.
    failure: Option<(RunStatus, String)>,
    /// Set when a plugin ended the run early (filter); stops the walk, run SUCCEEDED.
    ended: Option<String>,
    /// Values of every secret some step of the flow is granted.
    secrets: HashMap<String, String>,
    /// The trigger event as CloudEvent JSON, built the first time a step asks for it.
    cloud_event: Option<Arc<str>>,
    /// Windows of a test run without windows of its own, made by its first `threshold` step.
    scratch_windows: Option<crate::detect::ScratchWindows>,
    /// Set when a step's retry was deferred: when to resume (ms since the epoch). Stops the walk.
    retry_at_ms: Option<i64>,
}

impl RunState<'_> {
    /// The trigger event as CloudEvent JSON (see [`crate::catalog::cloud_event`]).
    fn cloud_event(&mut self) -> Arc<str> {
        let (trigger, run_id) = (&self.req.trigger, self.req.run_id);
        self.cloud_event
            .get_or_insert_with(|| {
                let event = crate::catalog::cloud_event(
                    crate::catalog::Catalog::builtin(),
                    trigger,
                    run_id,
                );
                Arc::from(event.to_string())
            })
            .clone()
    }
}

/// Longest rendered operand a router trace keeps, in bytes of its JSON text.
const MAX_TRACE_OPERAND_BYTES: usize = 1024;

/// Cuts an operand recorded in a trace to [`MAX_TRACE_OPERAND_BYTES`], saying so.
fn cap_operand(value: &mut Value) {
    let text = match value {
        Value::String(s) if s.len() > MAX_TRACE_OPERAND_BYTES => std::mem::take(s),
        Value::Array(_) | Value::Object(_) => {
            let text = value.to_string();
            if text.len() <= MAX_TRACE_OPERAND_BYTES {
                return;
            }
            text
        }
        _ => return,
    };
    let mut end = MAX_TRACE_OPERAND_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    *value = Value::String(format!(
        "{}… (cut for the trace: {} bytes in all)",
        &text[..end],
        text.len()
    ));
}

impl Executor {
    /// An executor; without `secrets`, granted secrets read as absent (local CLI runs).
    pub fn new(sandbox: Arc<Sandbox>, secrets: Option<Arc<Secrets>>) -> Executor {
        Executor {
            sandbox,
            secrets,
            allow_local: crate::netguard::dev_allow_local(),
            mailer: None,
            memory: None,
            windows: None,
        }
    }

    /// Lets `threshold` steps of live runs count in `windows` (the store, shared by every
    /// process).
    pub fn with_windows(mut self, windows: Arc<dyn WindowStates>) -> Executor {
        self.windows = Some(windows);
        self
    }

    /// Lets steps remember keys across runs of their flow in `memory`.
    pub fn with_memory(mut self, memory: Arc<dyn FlowMemory>) -> Executor {
        self.memory = Some(memory);
        self
    }

    /// Lets steps with `allowedRecipients` send e-mail through `mailer`.
    pub fn with_mailer(mut self, mailer: Option<Arc<Mailer>>) -> Executor {
        self.mailer = mailer;
        self
    }

    /// The sandbox the executor runs plugins in.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Executes the whole flow. Never fails as a call: every problem is part of the result.
    pub async fn execute(&self, req: &RunRequest<'_>) -> RunResult {
        let started = Instant::now();
        let ctx = json!({
            "trigger": req.trigger,
            "steps": {},
            "run": {"id": req.run_id, "flowId": req.flow_id, "attempt": req.attempt, "environment": req.environment},
        });
        let prior = req
            .prior_steps
            .iter()
            .map(|s| (s.name.as_str(), s))
            .collect();
        let secrets = self.resolve_secrets(req).await;
        let mut state = RunState {
            req,
            ctx,
            steps: Vec::new(),
            prior,
            failure: None,
            ended: None,
            secrets,
            cloud_event: None,
            scratch_windows: None,
            retry_at_ms: None,
        };
        self.run_steps(&mut state, &req.flow.steps).await;
        let (status, error) = match (state.retry_at_ms, state.failure) {
            (Some(_), _) => (RunStatus::Queued, None),
            (None, Some((status, error))) => (status, Some(error)),
            (None, None) => (RunStatus::Succeeded, None),
        };
        RunResult {
            status,
            error,
            steps: state.steps,
            duration_ms: millis(started.elapsed()),
        }
    }

    fn run_steps<'s>(
        &'s self,
        state: &'s mut RunState<'_>,
        steps: &'s [Step],
    ) -> BoxFuture<'s, ()> {
        Box::pin(async move {
            for step in steps {
                if state.failure.is_some() || state.ended.is_some() || state.retry_at_ms.is_some() {
                    return;
                }
                match step {
                    Step::Router(router) => self.run_router(state, router).await,
                    Step::Action(action) => self.run_action(state, action).await,
                    Step::Threshold(step) => self.run_threshold(state, step).await,
                }
            }
        })
    }

    async fn run_router(&self, state: &mut RunState<'_>, step: &RouterStep) {
        let started = Instant::now();
        let mut decision = router::decide(step, &state.ctx);
        // The decision is made on the full values; the trace keeps each operand only up to a
        // size, or fifty branches over a 1 MiB field would record 50 MiB per run.
        for branch in &mut decision.branches {
            for condition in branch.conditions.iter_mut().flatten() {
                cap_operand(&mut condition.left);
                if let Some(right) = &mut condition.right {
                    cap_operand(right);
                }
            }
        }
        let selected: Vec<&str> = decision
            .selected
            .iter()
            .map(|&i| step.branches[i].name.as_str())
            .collect();
        let output = json!({ "selectedBranches": selected });
        set_step_context(
            &mut state.ctx,
            &step.name,
            StepStatus::Succeeded,
            Some(&output),
            None,
        );
        let record = StepRecord {
            name: step.name.clone(),
            seq: state.steps.len() as i64,
            kind: StepKind::Router,
            status: StepStatus::Succeeded,
            input: None,
            output: Some(output),
            error: None,
            attempts: 1,
            duration_ms: millis(started.elapsed()),
            detail: Some(json!({ "mode": step.mode, "branches": decision.branches })),
        };
        state.steps.push(record);
        for index in decision.selected {
            self.run_steps(state, &step.branches[index].steps).await;
        }
    }

    /// Values of the secrets any step of the flow is granted, read once per run.
    async fn resolve_secrets(&self, req: &RunRequest<'_>) -> HashMap<String, String> {
        let Some(secrets) = &self.secrets else {
            return HashMap::new();
        };
        let mut names: Vec<String> = req
            .flow
            .action_steps()
            .flat_map(|s| s.secrets.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            return HashMap::new();
        }
        match secrets.resolve(req.scope, &names).await {
            Ok(values) => values,
            Err(error) => {
                tracing::error!(%error, run_id = req.run_id, "reading secrets failed; granted secrets read as absent");
                HashMap::new()
            }
        }
    }

    async fn run_action(&self, state: &mut RunState<'_>, step: &ActionStep) {
        // What the trace, later steps and a `/sync` caller see of this step: never a value (or
        // an encoding of one) of the secrets the step held. Built once for the step.
        let redactor = secrets::Redactor::new(
            step.secrets
                .iter()
                .filter_map(|name| state.secrets.get(name)),
        );
        if let Some(prior) = state.prior.get(step.name.as_str())
            && matches!(prior.status, StepStatus::Succeeded | StepStatus::Skipped)
        {
            let mut reused = (*prior).clone();
            // Recorded by an earlier attempt, perhaps by a version that redacted less.
            if let Some(output) = &mut reused.output {
                redactor.redact_value(output);
            }
            reuse(state, reused);
            return;
        }
        let started = Instant::now();
        // The plugin sees the granted secrets' values; the trace sees them redacted.
        let granted: HashMap<String, String> = step
            .secrets
            .iter()
            .filter_map(|name| state.secrets.get(name).map(|v| (name.clone(), v.clone())))
            .collect();
        let plugin = &step.plugin;
        let info = self.sandbox.plugin(&plugin.name, &plugin.version);
        let raw = info.as_ref().map_or(&[][..], |i| &i.raw_inputs[..]);
        let (input, recorded_input) =
            render_with_secrets(&step.input, &mut state.ctx, &step.secrets, &granted, raw);
        if self.secrets.is_some()
            && let Some(error) = unset_secret(&step.input, &step.secrets, &granted, raw)
        {
            fail_unset_secret(state, step, recorded_input, error);
            return;
        }
        let test_run = state.req.environment == Environment::Testing;
        if let Some(info) = &info
            && test_run
            && info.side_effects
            && !state.req.live
        {
            set_step_context(&mut state.ctx, &step.name, StepStatus::Skipped, None, None);
            state.steps.push(StepRecord {
                name: step.name.clone(),
                seq: state.steps.len() as i64,
                kind: StepKind::Action,
                status: StepStatus::Skipped,
                input: Some(recorded_input),
                output: None,
                error: None,
                attempts: 0,
                duration_ms: 0.0,
                detail: Some(
                    json!({ "plugin": plugin.to_string(), "skipped": "side effect in test run" }),
                ),
            });
            return;
        }
        let grants = Grants {
            allowed_hosts: Arc::new(
                step.allowed_hosts
                    .iter()
                    .filter_map(|h| HostPattern::parse(h).ok())
                    .collect(),
            ),
            secrets: granted,
            allow_local: self.allow_local,
            mail: MailGrant {
                mailer: self.mailer.clone(),
                allowed_recipients: step
                    .allowed_recipients
                    .iter()
                    .filter_map(|r| RecipientPattern::parse(r).ok())
                    .collect(),
            },
            memory: self.memory.clone().map(|memory| {
                MemoryGrant::new(memory, state.req.flow_id, !test_run).redacting(&redactor)
            }),
            event: info
                .as_ref()
                .is_some_and(|i| i.wants_event)
                .then(|| state.cloud_event()),
        };
        let input_text = input.to_string();
        let timeout = step
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_STEP_TIMEOUT);
        let max_attempts = step.retry.max_attempts.max(1);
        let mut attempts_detail = Vec::new();
        let mut logs = Vec::new();
        let mut refused = Vec::new();
        let mut ended = None;
        let mut response = None;
        let mut retry_at_ms = None;
        let prior = state.prior.get(step.name.as_str()).copied();
        // Attempts count across manual retries of the run, so a plugin sees how often it was tried.
        let earlier_attempts = prior.map_or(0, |p| p.attempts.max(0) as u32);
        // A run resumed after a deferred retry goes on with the same attempt budget and keeps
        // the failed attempts and logs recorded so far; a manual retry starts a fresh budget.
        let mut budget_start = earlier_attempts;
        let mut earlier_logs = Vec::new();
        if let Some(deferred) = prior.and_then(deferred_retry) {
            budget_start = deferred
                .first_attempt
                .saturating_sub(1)
                .min(earlier_attempts);
            attempts_detail = deferred.failed_attempts;
            earlier_logs = deferred.logs;
        }
        let mut attempt = earlier_attempts;
        let (status, mut output, mut error) = loop {
            attempt += 1;
            let ctx = StepContext {
                run_id: state.req.run_id.to_string(),
                flow_id: state.req.flow_id.to_string(),
                step_name: step.name.clone(),
                attempt,
                // A live test run is a real run to the plugin: it performs its side effects.
                test_run: test_run && !state.req.live,
            };
            let call_started = Instant::now();
            let report = self
                .sandbox
                .run(
                    &plugin.name,
                    &plugin.version,
                    &ctx,
                    &input_text,
                    timeout,
                    &grants,
                )
                .await;
            crate::metrics::recorded().plugin_called(&plugin.name, call_started.elapsed());
            logs.extend(report.logs);
            refused.extend(report.refused_requests);
            let (status, message, retryable) = match report.outcome {
                StepOutcome::Succeeded { output } => {
                    ended = report.end_run;
                    response = report.response;
                    break (StepStatus::Succeeded, Some(output), None);
                }
                StepOutcome::Failed { message, retryable } => {
                    (StepStatus::Failed, message, retryable)
                }
                StepOutcome::TimedOut { after } => (
                    StepStatus::Timeout,
                    format!(
                        "step timed out after {} ms (limit {} ms)",
                        after.as_millis(),
                        timeout.as_millis()
                    ),
                    true,
                ),
            };
            attempts_detail.push(json!({
                "attempt": attempt,
                "status": status,
                "error": message,
                "durationMs": millis(call_started.elapsed()),
            }));
            if !retryable || attempt - budget_start >= max_attempts {
                break (status, None, Some(message));
            }
            let backoff = step.retry.backoff(attempt);
            if state.req.defer_retries && backoff > DEFER_RETRY_AFTER {
                retry_at_ms = Some(
                    crate::store::epoch_ms()
                        .saturating_add(i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX)),
                );
                break (status, None, Some(message));
            }
            tokio::time::sleep(backoff).await;
        };
        let mut detail = Map::new();
        detail.insert("plugin".into(), json!(plugin.to_string()));
        if !logs.is_empty() || !earlier_logs.is_empty() {
            earlier_logs.extend(logs.iter().map(|line| json!(line)));
            detail.insert("logs".into(), Value::Array(earlier_logs));
        }
        if !attempts_detail.is_empty() {
            detail.insert("failedAttempts".into(), Value::Array(attempts_detail));
        }
        if !refused.is_empty() {
            detail.insert("refusedRequests".into(), json!(refused));
        }
        if let Some(reason) = &ended {
            detail.insert("endedRun".into(), json!(reason));
        }
        if let Some(response) = &response {
            detail.insert(SYNC_RESPONSE_KEY.into(), json!(response));
        }
        if let Some(at) = retry_at_ms {
            detail.insert(
                DEFERRED_RETRY_KEY.into(),
                json!({ "at": at, "firstAttempt": budget_start + 1 }),
            );
        }
        // Nothing a plugin echoes back may leak a secret into the trace, to later steps'
        // templates (`steps.NAME.output`, set below from the redacted output) or to a `/sync`
        // caller (the response a plugin set is in `detail`).
        let mut detail = Value::Object(detail);
        redactor.redact_value(&mut detail);
        if let Some(output) = &mut output {
            redactor.redact_value(output);
        }
        if let Some(error) = &mut error {
            redactor.redact_text(error);
        }
        let ended = ended.map(|mut reason| {
            redactor.redact_text(&mut reason);
            reason
        });
        set_step_context(
            &mut state.ctx,
            &step.name,
            status,
            output.as_ref(),
            error.as_deref(),
        );
        state.steps.push(StepRecord {
            name: step.name.clone(),
            seq: state.steps.len() as i64,
            kind: StepKind::Action,
            status,
            input: Some(recorded_input),
            output,
            error: error.clone(),
            attempts: i64::from(attempt),
            duration_ms: millis(started.elapsed()),
            detail: Some(detail),
        });
        if let Some(at) = retry_at_ms {
            state.retry_at_ms = Some(at);
        } else if let Some(reason) = ended {
            state.ended = Some(reason);
        } else if status != StepStatus::Succeeded && !step.continue_on_failure {
            let run_status = if status == StepStatus::Timeout {
                RunStatus::Timeout
            } else {
                RunStatus::Failed
            };
            let message = format!("step {} failed: {}", step.name, error.unwrap_or_default());
            state.failure = Some((run_status, message));
        }
    }
}

/// Renders a step's input twice: with the granted secrets' values under `secrets` (what the
/// plugin gets) and with every granted name mapped to `**REDACTED**` (what the trace keeps).
/// Secrets appear in the context only for the duration of the rendering. Fields in `raw`
/// ([`crate::wasm::PluginInfo::raw_inputs`]) are taken as written.
fn render_with_secrets(
    input: &Map<String, Value>,
    ctx: &mut Value,
    names: &[String],
    granted: &HashMap<String, String>,
    raw: &[String],
) -> (Value, Value) {
    if names.is_empty() {
        let rendered = Value::Object(render_input(input, ctx, raw));
        return (rendered.clone(), rendered);
    }
    let real: Map<String, Value> = granted.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let masked: Map<String, Value> = names.iter().map(|k| (k.clone(), json!(REDACTED))).collect();
    let Value::Object(map) = ctx else {
        unreachable!("the run context is an object")
    };
    map.insert("secrets".into(), Value::Object(real));
    let actual = Value::Object(render_input(input, ctx, raw));
    if let Value::Object(map) = ctx {
        map.insert("secrets".into(), Value::Object(masked));
    }
    let recorded = Value::Object(render_input(input, ctx, raw));
    if let Value::Object(map) = ctx {
        map.remove("secrets");
    }
    (actual, recorded)
}

/// `secret NAME is not set` for the first secret a step's input templates name that the step
/// is granted but the project has no value for: rendering it empty would send a blank token
/// or password, and the failure would show up far from its cause. Fields in `raw` are not
/// rendered, so they do not count. Templates naming a secret the step is not granted are
/// refused when the flow is saved ([`crate::flow::validate::save_problems`]).
fn unset_secret(
    input: &Map<String, Value>,
    names: &[String],
    granted: &HashMap<String, String>,
    raw: &[String],
) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    input
        .iter()
        .filter(|(field, _)| !raw.contains(field))
        .flat_map(|(_, value)| crate::flow::validate::referenced_secrets(value))
        .find(|name| names.contains(name) && !granted.contains_key(name))
        .map(|name| format!("secret {name} is not set"))
}

/// Records an action step that failed before its plugin ran because a secret it uses is not
/// set, and fails the run unless the step may fail.
fn fail_unset_secret(state: &mut RunState<'_>, step: &ActionStep, input: Value, error: String) {
    set_step_context(
        &mut state.ctx,
        &step.name,
        StepStatus::Failed,
        None,
        Some(&error),
    );
    state.steps.push(StepRecord {
        name: step.name.clone(),
        seq: state.steps.len() as i64,
        kind: StepKind::Action,
        status: StepStatus::Failed,
        input: Some(input),
        output: None,
        error: Some(error.clone()),
        attempts: 0,
        duration_ms: 0.0,
        detail: Some(json!({ "plugin": step.plugin.to_string() })),
    });
    if !step.continue_on_failure {
        state.failure = Some((
            RunStatus::Failed,
            format!("step {} failed: {error}", step.name),
        ));
    }
}

fn render_input(input: &Map<String, Value>, ctx: &Value, raw: &[String]) -> Map<String, Value> {
    input
        .iter()
        .map(|(k, v)| {
            let value = if raw.contains(k) {
                v.clone()
            } else {
                template::render(v, ctx)
            };
            (k.clone(), value)
        })
        .collect()
}

/// Takes a step's result from an earlier attempt of the run as it was: numbered in this run
/// and visible to later templates.
fn reuse(state: &mut RunState<'_>, mut record: StepRecord) {
    record.seq = state.steps.len() as i64;
    set_step_context(
        &mut state.ctx,
        &record.name,
        record.status,
        record.output.as_ref(),
        None,
    );
    state.steps.push(record);
}

/// Makes a step's result visible to later templates as `steps.NAME.output` / `.status` / `.error`.
fn set_step_context(
    ctx: &mut Value,
    name: &str,
    status: StepStatus,
    output: Option<&Value>,
    error: Option<&str>,
) {
    let mut entry = Map::new();
    entry.insert("status".into(), json!(status));
    entry.insert("output".into(), output.cloned().unwrap_or(Value::Null));
    if let Some(error) = error {
        entry.insert("error".into(), json!(error));
    }
    if let Some(steps) = ctx.get_mut("steps").and_then(Value::as_object_mut) {
        steps.insert(name.to_string(), Value::Object(entry));
    }
}

/// What a step's record says of a retry its run deferred ([`DEFERRED_RETRY_KEY`]).
struct DeferredRetry {
    first_attempt: u32,
    failed_attempts: Vec<Value>,
    logs: Vec<Value>,
}

/// The deferred retry a prior step record is waiting for, if it is one.
fn deferred_retry(prior: &StepRecord) -> Option<DeferredRetry> {
    if !matches!(prior.status, StepStatus::Failed | StepStatus::Timeout) {
        return None;
    }
    let detail = prior.detail.as_ref()?;
    let first_attempt = detail
        .get(DEFERRED_RETRY_KEY)?
        .get("firstAttempt")?
        .as_u64()?;
    let list = |key: &str| {
        detail
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    Some(DeferredRetry {
        first_attempt: u32::try_from(first_attempt).unwrap_or(u32::MAX),
        failed_attempts: list("failedAttempts"),
        logs: list("logs"),
    })
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod deferral_tests {
    use super::*;

    fn record(status: StepStatus, detail: Option<Value>) -> StepRecord {
        StepRecord {
            name: "s".into(),
            seq: 0,
            kind: StepKind::Action,
            status,
            input: None,
            output: None,
            error: None,
            attempts: 2,
            duration_ms: 1.0,
            detail,
        }
    }

    /// A step waiting for a deferred retry carries its budget, failed attempts and logs over;
    /// a plain failed step (a manual retry's prior) and a succeeded one do not.
    #[test]
    fn a_deferred_retry_is_read_back_from_the_step_record() {
        let waiting = record(
            StepStatus::Failed,
            Some(json!({
                DEFERRED_RETRY_KEY: {"at": 1234, "firstAttempt": 1},
                "failedAttempts": [{"attempt": 1}, {"attempt": 2}],
                "logs": [{"message": "x"}],
            })),
        );
        let deferred = deferred_retry(&waiting).expect("deferred");
        assert_eq!(deferred.first_attempt, 1);
        assert_eq!(deferred.failed_attempts.len(), 2);
        assert_eq!(deferred.logs.len(), 1);
        assert!(deferred_retry(&record(StepStatus::Failed, Some(json!({})))).is_none());
        assert!(deferred_retry(&record(StepStatus::Failed, None)).is_none());
        let done = record(
            StepStatus::Succeeded,
            Some(json!({ DEFERRED_RETRY_KEY: {"at": 1, "firstAttempt": 1} })),
        );
        assert!(deferred_retry(&done).is_none());

        let result = |status| RunResult {
            status,
            error: None,
            steps: vec![record(StepStatus::Succeeded, None), waiting.clone()],
            duration_ms: 1.0,
        };
        assert_eq!(result(RunStatus::Queued).retry_at_ms(), Some(1234));
        assert_eq!(
            result(RunStatus::Failed).retry_at_ms(),
            None,
            "only a run handed back to the queue waits"
        );
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn a_granted_secret_that_is_not_set_is_named() {
        let input: Map<String, Value> = serde_json::from_value(json!({
            "url": "https://example.com",
            "auth": {"bearer": "{{secrets.TOKEN}}"},
            "code": "{{secrets.RAW}}",
        }))
        .unwrap();
        let names = ["TOKEN".to_string(), "RAW".to_string(), "SPARE".to_string()];
        let set = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let raw = ["code".to_string()];
        assert_eq!(
            unset_secret(&input, &names, &set(&[]), &raw).as_deref(),
            Some("secret TOKEN is not set")
        );
        // Set: nothing to report; an unset secret only in a raw field or not used is no failure.
        assert_eq!(
            unset_secret(&input, &names, &set(&[("TOKEN", "t")]), &raw),
            None
        );
        // Without grants there is nothing a template may read (refused when saved).
        assert_eq!(unset_secret(&input, &[], &set(&[]), &raw), None);
        // A field not marked raw counts.
        assert_eq!(
            unset_secret(&input, &names, &set(&[("TOKEN", "t")]), &[]).as_deref(),
            Some("secret RAW is not set")
        );
    }
}
