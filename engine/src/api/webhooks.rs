//! `POST /v1/webhooks/{flowId}`: the intake. Size limit, per-flow authentication, JSON parsing,
//! event identity and deduplication, then one durable write of the event and its queued run
//! before answering `202 {"runId"}`. `/sync` also waits for the run to finish and answers with
//! the response a step set (the `respond` plugin), or else with the run's summary (id, status,
//! error, times; the whole record only when the flow's trigger says `syncResponse: run`).
//!
//! A batch (a top-level JSON array, or an `application/x-ndjson` / `application/jsonl` body: see
//! [`trigger::parse_webhook`]) is one event per element, each with its own identity and dedup and
//! its own queued run, all written in one transaction or none: a bad element is a 400 naming its
//! index before anything is stored, more than `HOOKFLOW_MAX_BATCH_EVENTS` elements a 413. The
//! answer lists every element's run: `{"events": [{"index", "runId", "duplicate"}]}`. `/sync`
//! refuses batches (400): it answers for one run.

use super::openapi::Object;
use super::{ApiError, ApiResult, AppState, Params};
use crate::flow::{SyncAnswer, Trigger};
use crate::metrics::Rejection;
use crate::queue::Waited;
use crate::registry::ActiveFlow;
use crate::store::{Accepted, ClaimedRun, Environment, Lease, NewEvent, Scope, new_id};
use crate::trigger::{self, BodyError, Parsed, verify};
use crate::wasm::SyncResponse;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Public: each flow's trigger authenticates its own callers.
pub fn routes() -> Vec<super::guard::Route> {
    use super::guard;
    use crate::access::Need;
    vec![
        guard::post("/webhooks/{flow_id}", Need::Public, receive)
            .doc("Accepts an event (or a batch) for the flow: 202 with the run, 200 for a duplicate")
            .body::<serde_json::Value>()
            .returns::<Object>(StatusCode::ACCEPTED)
            .returns::<Object>(StatusCode::OK),
        guard::post("/webhooks/{flow_id}/sync", Need::Public, receive_sync)
            .doc("Accepts one event and answers when its run finished: the respond step's answer, or the run")
            .query::<SyncParams>()
            .body::<serde_json::Value>()
            .returns::<Object>(StatusCode::OK)
            .verbatim(),
    ]
}

/// Longest a `/sync` caller may ask to wait.
const MAX_SYNC_WAIT: Duration = Duration::from_secs(300);
const DEFAULT_SYNC_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SyncParams {
    timeout_ms: Option<u64>,
}

async fn receive(
    State(app): State<AppState>,
    Path(flow_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let active = serving_flow(&app, &flow_id).await?;
    let answer = receive_found(&app, &flow_id, active, &headers, body).await;
    counted(&app, &flow_id, answer)
}

async fn receive_found(
    app: &AppState,
    flow_id: &str,
    active: Arc<ActiveFlow>,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let request = logged(flow_id, check(app, flow_id, active, headers, body).await)?;
    match request.events {
        Events::One(event) => {
            let (accepted, _) = logged(flow_id, store_one(app, &request.active, event).await)?;
            Ok(match accepted {
                Accepted::New { run_id } => {
                    (StatusCode::ACCEPTED, Json(json!({ "runId": run_id }))).into_response()
                }
                Accepted::Duplicate { run_id } => (
                    StatusCode::OK,
                    Json(json!({ "runId": run_id, "duplicate": true })),
                )
                    .into_response(),
            })
        }
        Events::Batch(events) => {
            let answers = logged(flow_id, store_batch(app, &request.active, events).await)?;
            Ok(batch_response(&answers))
        }
    }
}

/// `202 {"events": [{"index", "runId", "duplicate"}, …]}` in the order of the batch; `200`
/// when every element was a duplicate (a redelivered batch started nothing).
fn batch_response(answers: &[Accepted]) -> Response {
    let mut all_duplicates = true;
    let events: Vec<serde_json::Value> = answers
        .iter()
        .enumerate()
        .map(|(index, accepted)| {
            let (run_id, duplicate) = match accepted {
                Accepted::New { run_id } => (run_id, false),
                Accepted::Duplicate { run_id } => (run_id, true),
            };
            all_duplicates &= duplicate;
            json!({ "index": index, "runId": run_id, "duplicate": duplicate })
        })
        .collect();
    let status = if all_duplicates {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    (status, Json(json!({ "events": events }))).into_response()
}

async fn receive_sync(
    State(app): State<AppState>,
    Path(flow_id): Path<String>,
    Params(params): Params<SyncParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let active = serving_flow(&app, &flow_id).await?;
    let answer = receive_sync_found(&app, &flow_id, active, params, &headers, body).await;
    counted(&app, &flow_id, answer)
}

async fn receive_sync_found(
    app: &AppState,
    flow_id: &str,
    active: Arc<ActiveFlow>,
    params: SyncParams,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let wait = params
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_SYNC_WAIT);
    if wait > MAX_SYNC_WAIT {
        return Err(ApiError::bad_request(format!(
            "timeoutMs: at most {} allowed",
            MAX_SYNC_WAIT.as_millis()
        )));
    }
    let request = logged(flow_id, check(app, flow_id, active, headers, body).await)?;
    // One caller waits for one run's answer; a batch has many runs and no one answer to wait
    // for, so it is refused before anything is stored.
    let Events::One(event) = request.events else {
        app.metrics.event_rejected(Rejection::Body);
        return logged(
            flow_id,
            Err(ApiError::bad_request(
                "a batch (JSON array or JSON lines) cannot be sent to /sync, which answers \
                 for one run: send it to POST /v1/webhooks/{flowId}, or one event per /sync call",
            )),
        );
    };
    let answer = request.answer;
    let (accepted, started) = logged(flow_id, store_one(app, &request.active, event).await)?;
    let (run_id, duplicate) = match accepted {
        Accepted::New { run_id } => (run_id, false),
        Accepted::Duplicate { run_id } => (run_id, true),
    };
    let waited = match started {
        Some(finished) => match tokio::time::timeout(wait, finished).await {
            Ok(Ok(response)) => Waited::Finished(response),
            Ok(Err(_)) => Waited::Stored,
            Err(_) => Waited::TimedOut,
        },
        // A duplicate's run may have finished long ago, and a run queued for another process
        // finishes there: then the store has to be asked.
        None => {
            let elsewhere = duplicate || app.shared_database;
            app.queue.wait_for(&run_id, wait, elsewhere).await
        }
    };
    match waited {
        Waited::Finished(Some(response)) => return Ok(http_response(response)),
        Waited::Finished(None) | Waited::Stored => {}
        Waited::TimedOut => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("run {run_id} did not finish within {} ms", wait.as_millis()),
            )
            .with_extra(json!({ "runId": run_id })));
        }
    }
    let run = app
        .store
        .get_run(&run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} not found")))?;
    if let Some(response) = crate::exec::sync_response(&run.steps) {
        return Ok(http_response(response));
    }
    // The run record holds every step's input, output and logs: only for flows that say so.
    if answer == SyncAnswer::Run {
        return Ok(Json(json!(run)).into_response());
    }
    // Without its trigger event and steps: id, status, error, times.
    Ok(Json(json!(run.summary)).into_response())
}

/// A response a `respond` step set, as HTTP.
fn http_response(set: SyncResponse) -> Response {
    let mut response = Response::new(Body::from(set.body));
    *response.status_mut() = StatusCode::from_u16(set.status).unwrap_or(StatusCode::OK);
    response.extensions_mut().insert(super::error::Verbatim);
    let headers = response.headers_mut();
    for (name, value) in set.headers {
        // Checked when the plugin set them; anything unparsable is dropped, not fatal.
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            header::HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    response
}

/// What `/sync` waits on for a run this process started at intake: its response, if any.
type Started = tokio::sync::oneshot::Receiver<Option<SyncResponse>>;

/// A webhook call authenticated and parsed, nothing stored yet.
struct Request {
    active: Arc<ActiveFlow>,
    /// What the flow lets a `/sync` caller see of its run.
    answer: SyncAnswer,
    events: Events,
}

/// The events a call carries: one (any JSON value but an array, as always), or a batch.
enum Events {
    One(Incoming),
    Batch(Vec<Incoming>),
}

/// One event to store: its dedup key, the headers kept with it and its JSON text.
struct Incoming {
    key: String,
    headers: serde_json::Value,
    body: String,
}

/// The serving flow a webhook call is for. A call refused here (404: no such flow, or it is
/// disabled; 5xx: the registry could not be read) is logged and counted under
/// [`crate::metrics::UNKNOWN_FLOW`]: the id in its path is whatever the caller sent, so it is
/// no label.
async fn serving_flow(app: &AppState, flow_id: &str) -> ApiResult<Arc<ActiveFlow>> {
    let found: ApiResult<Arc<ActiveFlow>> = async {
        app.flows
            .serving(flow_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("flow {flow_id} not found")))
    }
    .await;
    if let Err(error) = &found {
        app.metrics.webhook_answered(None, error.status.as_u16());
    }
    logged(flow_id, found)
}

/// Passes the answer to a call for a flow that was found through, counted under the flow's id
/// and the answer's status code.
fn counted(app: &AppState, flow_id: &str, answer: ApiResult<Response>) -> ApiResult<Response> {
    let status = match &answer {
        Ok(response) => response.status(),
        Err(error) => error.status,
    };
    app.metrics.webhook_answered(Some(flow_id), status.as_u16());
    answer
}

/// Passes `result` through, logging a refusal first.
fn logged<T>(flow_id: &str, result: ApiResult<T>) -> ApiResult<T> {
    if let Err(error) = &result {
        log_refusal(flow_id, error);
    }
    result
}

/// One line per refused webhook call, for the on-call engineer: the flow, the status and why.
/// The reason never holds a credential (authentication errors name the header, not its value).
/// Client errors are warnings; a server-side failure is an error. A refused batch is one call,
/// so one line (naming the bad element's index when one is to blame).
fn log_refusal(flow_id: &str, error: &ApiError) {
    let status = error.status.as_u16();
    if error.status.is_server_error() {
        tracing::error!(flow_id, status, reason = %error.detail, "webhook call failed");
    } else {
        tracing::warn!(flow_id, status, reason = %error.detail, "webhook call refused");
    }
}

/// Everything before the write for the flow [`serving_flow`] found (a disabled flow answers
/// exactly as a missing one, before any authentication, so the answer tells a stranger
/// nothing): the body within the size limit, authentication, parsing (one event or a batch,
/// every element checked as the run will parse it) and each event's identity. A refused call
/// stores nothing.
async fn check(
    app: &AppState,
    flow_id: &str,
    active: Arc<ActiveFlow>,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Request> {
    let Trigger::Webhook {
        auth,
        sync_response: answer,
    } = &active.flow.trigger
    else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("flow {flow_id} is triggered by a schedule, not a webhook"),
        ));
    };
    let bytes = read_limited(app, headers, body).await?;
    let resolved;
    let auth = match auth.secret_name() {
        Some(name) => {
            resolved = auth.with_credential(&credential(app, &active, name).await?);
            &resolved
        }
        None => auth,
    };
    let now = chrono::Utc::now().timestamp();
    if let Err(error) = verify::verify(auth, headers, &bytes, now) {
        app.metrics.event_rejected(Rejection::Auth);
        return Err(ApiError::unauthorized(format!(
            "webhook authentication failed: {error}"
        )));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let parsed = trigger::parse_webhook(content_type, &bytes, app.max_batch_events)
        .map_err(|error| refused_body(app, error))?;
    let kept = trigger::kept_headers(headers, trigger::secret_header(auth));
    let events = match parsed {
        Parsed::Single(body_id) => Events::One(Incoming {
            key: trigger::event_key(body_id, headers),
            headers: kept,
            // The body parsed as JSON, so it is valid UTF-8.
            body: String::from_utf8(bytes.to_vec())
                .map_err(|_| ApiError::bad_request("body is not UTF-8"))?,
        }),
        Parsed::Batch(elements) => Events::Batch(
            elements
                .into_iter()
                .enumerate()
                .map(|(index, element)| Incoming {
                    key: trigger::element_key(element.id, headers, index),
                    headers: kept.clone(),
                    body: element.text.to_string(),
                })
                .collect(),
        ),
    };
    let answer = *answer;
    Ok(Request {
        active,
        answer,
        events,
    })
}

/// How long a credential read from a project secret is reused before it is read again: a
/// rotated or deleted secret takes effect within this time, and a flood of calls costs one
/// read and one decryption per secret per period, not one per call.
const CREDENTIAL_TTL: Duration = Duration::from_secs(5);

/// Most cached credentials; past it the cache starts over (a cheap bound, not an LRU).
const MAX_CACHED_CREDENTIALS: usize = 10_000;

/// Credentials read from secrets, by (platform, project, secret name), with when they were
/// read. Only values that were set are kept: a missing secret is asked for again next call.
type CredentialCache = std::sync::Mutex<HashMap<(String, String, String), (String, Instant)>>;

static CREDENTIALS: std::sync::LazyLock<CredentialCache> =
    std::sync::LazyLock::new(Default::default);

/// The value of the project secret a flow's webhook credential names (`{{secrets.NAME}}`).
/// A secret that is not set is a 503: the flow is misconfigured, not the caller, and senders
/// retry a 5xx, so no event is lost while the operator sets it. The answer does not name the
/// secret; the log line does.
async fn credential(app: &AppState, active: &ActiveFlow, name: &str) -> ApiResult<String> {
    let record = &active.record;
    let key = (
        record.platform_id.clone(),
        record.project_id.clone(),
        name.to_string(),
    );
    if let Some((value, read)) = CREDENTIALS.lock().expect("credential cache").get(&key)
        && read.elapsed() < CREDENTIAL_TTL
    {
        return Ok(value.clone());
    }
    let scope = Scope {
        platform_id: key.0.clone(),
        project_id: key.1.clone(),
    };
    let mut values = app.secrets.resolve(&scope, &[name.to_string()]).await?;
    let Some(value) = values.remove(name) else {
        tracing::error!(flow_id = %record.id, secret = name, "the webhook credential's secret is not set");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhook authentication is not configured: the flow's credential secret is not set",
        ));
    };
    let mut cache = CREDENTIALS.lock().expect("credential cache");
    if cache.len() >= MAX_CACHED_CREDENTIALS {
        cache.clear();
    }
    cache.insert(key, (value.clone(), Instant::now()));
    Ok(value)
}

/// A body the intake refuses, counted: too many events is a size refusal (413, naming the
/// limit), anything else a 400 with the reason; a bad batch element also as `index` (and its
/// NDJSON `line`) in the problem.
fn refused_body(app: &AppState, error: BodyError) -> ApiError {
    if let BodyError::TooManyEvents { limit } = error {
        app.metrics.event_rejected(Rejection::Size);
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, error.to_string())
            .with_extra(json!({ "limit": limit }));
    }
    app.metrics.event_rejected(Rejection::Body);
    let problem = ApiError::bad_request(error.to_string());
    match error.element() {
        Some((index, Some(line))) => problem.with_extra(json!({ "index": index, "line": line })),
        Some((index, None)) => problem.with_extra(json!({ "index": index })),
        None => problem,
    }
}

/// Stores one event. With a worker slot free here (a process that executes runs), the run is
/// stored already started under this process's lease and runs at once: no claim transaction,
/// no wait for the dispatcher (a `202` does not wait for it; `/sync` waits on the second
/// value). Without a free slot it is queued, so a `/sync` flood runs within the worker limit
/// instead of beside it (regression: hardening I).
async fn store_one(
    app: &AppState,
    active: &ActiveFlow,
    event: Incoming,
) -> ApiResult<(Accepted, Option<Started>)> {
    let slot = app
        .runs_work
        .then(|| app.queue.try_take_slot(&active.record.id))
        .flatten();
    let Some(slot) = slot else {
        let accepted = enqueue(app, active, event.key, event.headers, event.body).await?;
        return Ok((accepted, None));
    };
    let event = new_event(
        active,
        event.key,
        event.headers,
        event.body,
        Some(app.queue.lease()),
    );
    let run = ClaimedRun {
        id: event.run_id.clone(),
        scope: event.scope.clone(),
        flow_id: event.flow_id.clone(),
        flow_version: event.flow_version,
        environment: event.environment,
        attempt: 1,
        event_headers: event.headers.clone(),
        event_body: event.body.clone(),
        prior_steps: Vec::new(),
    };
    // From the commit on, the run belongs to this process (stored RUNNING under its lease), so
    // starting it must not depend on the caller: a client that hangs up drops this handler's
    // future, and a run committed but never started would stay RUNNING while its lease is
    // renewed. A task of its own finishes the hand-over whatever the caller does.
    let app = app.clone();
    let hand_over = tokio::spawn(async move {
        let accepted = store_event(&app, event).await?;
        // A duplicate starts nothing: its slot goes back when dropped here.
        let started = matches!(accepted, Accepted::New { .. }).then(|| {
            app.queue.execute_now(
                slot,
                app.executor.clone(),
                app.flows.clone(),
                app.metrics.clone(),
                run,
            )
        });
        Ok::<_, ApiError>((accepted, started))
    });
    hand_over.await.map_err(|e| {
        tracing::error!(error = %e, "storing an event failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storing the event failed",
        )
    })?
}

/// Stores a batch: every event with its queued run in one transaction (all or nothing), each
/// deduplicated on its own key, then wakes the queue once. No worker slot is taken per element
/// at intake: the dispatcher claims the runs as slots free up, so a large batch cannot crowd
/// out single events or `/sync` callers (and the answer does not wait for any run).
async fn store_batch(
    app: &AppState,
    active: &ActiveFlow,
    events: Vec<Incoming>,
) -> ApiResult<Vec<Accepted>> {
    let events = events
        .into_iter()
        .map(|e| new_event(active, e.key, e.headers, e.body, None))
        .collect();
    let answers = app.store.accept_events(events).await?;
    for accepted in &answers {
        app.metrics
            .event_accepted(matches!(accepted, Accepted::Duplicate { .. }));
    }
    if answers.iter().any(|a| matches!(a, Accepted::New { .. })) {
        app.queue.wake();
    }
    Ok(answers)
}

/// Writes the event and its queued run (group commit) and wakes the queue.
async fn enqueue(
    app: &AppState,
    active: &ActiveFlow,
    event_key: String,
    headers: serde_json::Value,
    body: String,
) -> ApiResult<Accepted> {
    let accepted = store_event(app, new_event(active, event_key, headers, body, None)).await?;
    if let Accepted::New { .. } = accepted {
        app.queue.wake();
    }
    Ok(accepted)
}

/// The group-committed write of an event and its run, counted in the metrics.
async fn store_event(app: &AppState, event: NewEvent) -> ApiResult<Accepted> {
    let accepted = app.store.accept_event(event).await?;
    app.metrics
        .event_accepted(matches!(accepted, Accepted::Duplicate { .. }));
    Ok(accepted)
}

fn new_event(
    active: &ActiveFlow,
    event_key: String,
    headers: serde_json::Value,
    body: String,
    lease: Option<Lease>,
) -> NewEvent {
    let flow_id = active.record.id.as_str();
    NewEvent {
        event_id: new_id(),
        run_id: new_id(),
        flow_id: flow_id.to_string(),
        flow_version: active.record.version,
        scope: crate::store::Scope {
            platform_id: active.record.platform_id.clone(),
            project_id: active.record.project_id.clone(),
        },
        event_key: Some(event_key),
        environment: Environment::Production,
        headers,
        body,
        lease,
    }
}

/// Reads the body up to the configured limit; larger bodies are refused with 413 without being
/// read to the end.
async fn read_limited(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<axum::body::Bytes> {
    let limit = app.max_body_bytes;
    let too_large = || {
        app.metrics.event_rejected(Rejection::Size);
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than the {limit}-byte limit"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(error) => Err(ApiError::bad_request(format!(
            "could not read the body: {error}"
        ))),
    }
}

/// Delivers the engine's own audit events to this server's flow webhooks without a network
/// round trip (event destinations pointing at ourselves). The event is the engine's own, so the
/// flow's webhook authentication does not apply; deduplication does (on the event id).
pub struct InProcessIntake(pub std::sync::Weak<super::App>);

impl crate::stream::LocalIntake for InProcessIntake {
    fn deliver<'a>(
        &'a self,
        flow_id: &'a str,
        msg_id: &'a str,
        body: &'a [u8],
        hop: u32,
    ) -> futures::future::BoxFuture<'a, Result<u16, String>> {
        Box::pin(async move {
            let app = self.0.upgrade().ok_or("the server is shutting down")?;
            let active = match app.flows.serving(flow_id).await {
                Ok(Some(active)) => active,
                Ok(None) => return Ok(404),
                Err(e) => return Err(e.to_string()),
            };
            if !matches!(active.flow.trigger, Trigger::Webhook { .. }) {
                return Ok(409);
            }
            let body_id = trigger::parse_body(None, body).map_err(|e| e.to_string())?;
            let key = body_id.0.unwrap_or_else(|| msg_id.to_string());
            let text =
                String::from_utf8(body.to_vec()).map_err(|_| "body is not UTF-8".to_string())?;
            // The causation depth goes with the event, so the run's own events carry it on.
            let headers = json!({
                "webhook-id": msg_id,
                "x-hookflow-dispatch": "in-process",
                crate::stream::HOP_HEADER: hop.to_string(),
            });
            match enqueue(&app, &active, key, headers, text).await {
                Ok(Accepted::New { .. }) => Ok(202),
                Ok(Accepted::Duplicate { .. }) => Ok(200),
                Err(e) => Err(e.detail),
            }
        })
    }
}
