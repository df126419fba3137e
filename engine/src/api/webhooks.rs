//! `POST /v1/webhooks/{flowId}`: the intake. Size limit, per-flow authentication, JSON parsing,
//! event identity and deduplication, then one durable write of the event and its queued run
//! before answering `202 {"runId"}`. `/sync` also waits for the run to finish and answers with
//! the response a step set (the `respond` plugin), or else with the run's summary (id, status,
//! error, times; the whole record only when the flow's trigger says `syncResponse: run`).

use super::{ApiError, ApiResult, AppState, Params};
use crate::flow::{SyncAnswer, Trigger};
use crate::metrics::Rejection;
use crate::queue::{Slot, Waited};
use crate::store::{Accepted, ClaimedRun, Environment, Lease, NewEvent, new_id};
use crate::trigger::{self, verify};
use crate::wasm::SyncResponse;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// Public: each flow's trigger authenticates its own callers.
pub fn routes() -> Vec<super::guard::Route> {
    use super::guard;
    use crate::access::Need;
    vec![
        guard::post("/webhooks/{flow_id}", Need::Public, receive),
        guard::post("/webhooks/{flow_id}/sync", Need::Public, receive_sync),
    ]
}

/// Longest a `/sync` caller may ask to wait.
const MAX_SYNC_WAIT: Duration = Duration::from_secs(300);
const DEFAULT_SYNC_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
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
    // With a worker slot free here, the run is stored already started under this process's
    // lease and runs at once: no claim transaction, no wait for the dispatcher (the 202 does
    // not wait for it). Otherwise it is queued for whichever process claims it first.
    let slot = app.runs_work.then(|| app.queue.try_take_slot()).flatten();
    let (accepted, _, _) = accept(&app, &flow_id, &headers, body, slot).await?;
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

async fn receive_sync(
    State(app): State<AppState>,
    Path(flow_id): Path<String>,
    Params(params): Params<SyncParams>,
    headers: HeaderMap,
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
    // A process that executes runs and has a worker slot free takes this one at intake and
    // starts it at once: no trip through the queue, and on a shared database no other process
    // can take it. Without a free slot it is queued like any event, so a `/sync` flood runs
    // within the worker limit instead of beside it (regression: hardening I).
    let slot = app.runs_work.then(|| app.queue.try_take_slot()).flatten();
    let (accepted, started, answer) = accept(&app, &flow_id, &headers, body, slot).await?;
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

/// An accepted event: new or duplicate, when its run finishes if this process started it, and
/// what the flow lets a `/sync` caller see of it.
type Intake = (Accepted, Option<Started>, SyncAnswer);

/// Authenticates, parses and durably stores one webhook event. With a worker `slot` the run is
/// stored already started for this process and executed right after the commit; the second
/// value then tells when it finished. Without one it is queued.
async fn accept(
    app: &AppState,
    flow_id: &str,
    headers: &HeaderMap,
    body: Body,
    slot: Option<Slot>,
) -> ApiResult<Intake> {
    let result = accept_checked(app, flow_id, headers, body, slot).await;
    if let Err(error) = &result {
        log_refusal(flow_id, error);
    }
    result
}

/// One line per refused webhook call, for the on-call engineer: the flow, the status and why.
/// The reason never holds a credential (authentication errors name the header, not its value).
/// Client errors are warnings; a server-side failure is an error.
fn log_refusal(flow_id: &str, error: &ApiError) {
    let status = error.status.as_u16();
    if error.status.is_server_error() {
        tracing::error!(flow_id, status, reason = %error.detail, "webhook call failed");
    } else {
        tracing::warn!(flow_id, status, reason = %error.detail, "webhook call refused");
    }
}

async fn accept_checked(
    app: &AppState,
    flow_id: &str,
    headers: &HeaderMap,
    body: Body,
    slot: Option<Slot>,
) -> ApiResult<Intake> {
    let active = app
        .flows
        .current(flow_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow {flow_id} not found")))?;
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
    let body_id = trigger::parse_body(content_type, &bytes).map_err(|e| {
        app.metrics.event_rejected(Rejection::Body);
        ApiError::bad_request(e.to_string())
    })?;
    let event_key = trigger::event_key(body_id, headers);
    // The body parsed as JSON, so it is valid UTF-8.
    let body = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
    let headers = trigger::kept_headers(headers, trigger::secret_header(auth));
    let Some(slot) = slot else {
        let accepted = enqueue(app, &active, event_key, headers, body).await?;
        return Ok((accepted, None, *answer));
    };
    let event = new_event(&active, event_key, headers, body, Some(app.queue.lease()));
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
    let answer = *answer;
    let (accepted, started) = hand_over.await.map_err(|e| {
        tracing::error!(error = %e, "storing an event failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storing the event failed",
        )
    })??;
    Ok((accepted, started, answer))
}

/// Writes the event and its queued run (group commit) and wakes the queue.
async fn enqueue(
    app: &AppState,
    active: &crate::registry::ActiveFlow,
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
    active: &crate::registry::ActiveFlow,
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
    ) -> futures::future::BoxFuture<'a, Result<u16, String>> {
        Box::pin(async move {
            let app = self.0.upgrade().ok_or("the server is shutting down")?;
            let active = match app.flows.current(flow_id).await {
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
            let headers = json!({"webhook-id": msg_id, "x-hookflow-dispatch": "in-process"});
            match enqueue(&app, &active, key, headers, text).await {
                Ok(Accepted::New { .. }) => Ok(202),
                Ok(Accepted::Duplicate { .. }) => Ok(200),
                Err(e) => Err(e.detail),
            }
        })
    }
}
