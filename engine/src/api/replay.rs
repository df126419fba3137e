//! `POST /v1/flows/{id}/replay`: a flow run over past events to see what its detections would
//! have fired (see [`crate::replay`]). The events are given inline, or read from the flow's
//! own stored live events or from the engine's audit log in a time range.

use super::guard::{self, Route};
use super::openapi::Object;
use super::{ApiError, ApiResult, AppState, RequestActor};
use crate::access::{Need, Target};
use crate::exec::Executor;
use crate::replay::{self, MAX_REPLAY_EVENTS};
use crate::store::{AuditAction, AuditDraft, AuditFilter, Cursor, Role, Scope};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub fn routes() -> Vec<Route> {
    vec![
        guard::post(
            "/flows/{id}/replay",
            Need::Project(Role::Operator, Target::Flow),
            replay_flow,
        )
        .doc("Runs the flow over past events as test runs: the alerts and would-be actions")
        .body::<ReplayRequest>()
        .returns::<Object>(StatusCode::OK),
    ]
}

/// Where a replay's events come from.
#[derive(Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
enum Source {
    /// The `events` array of the request.
    #[default]
    Inline,
    /// The flow's own live events, by the time they were received.
    Events,
    /// The engine's audit log (its own `flow.*`, `user.*`, ... events), by creation time.
    AuditLog,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplayRequest {
    #[serde(default)]
    source: Source,
    events: Option<Vec<Value>>,
    /// RFC 3339, inclusive.
    from: Option<String>,
    /// RFC 3339, exclusive; now when absent.
    to: Option<String>,
    /// Most events read from the store (default and maximum 100,000).
    limit: Option<u32>,
}

/// Most events a stored-range replay reads unless asked for fewer.
const DEFAULT_STORED_LIMIT: u32 = 100_000;

async fn replay_flow(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let request: ReplayRequest = super::json_body(&body)?;
    let active = app
        .flows
        .current(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow {id} not found")))?;
    let scope = Scope {
        platform_id: active.record.platform_id.clone(),
        project_id: active.record.project_id.clone(),
    };
    let events = match request.source {
        Source::Inline => {
            if request.from.is_some() || request.to.is_some() || request.limit.is_some() {
                return Err(ApiError::bad_request(
                    "source: from, to and limit apply to \"events\" or \"auditLog\", not to inline events",
                ));
            }
            let events = request.events.ok_or_else(|| {
                ApiError::bad_request(
                    "events: required (or set source to \"events\" or \"auditLog\" with from/to)",
                )
            })?;
            if events.len() > MAX_REPLAY_EVENTS {
                return Err(ApiError::bad_request(format!(
                    "events: at most {MAX_REPLAY_EVENTS} events per replay"
                )));
            }
            events
        }
        source => {
            if request.events.is_some() {
                return Err(ApiError::bad_request(
                    "events: not allowed with a stored source (it reads the events itself)",
                ));
            }
            let from = super::rfc3339(
                "from",
                request
                    .from
                    .as_deref()
                    .ok_or_else(|| ApiError::bad_request("from: required for a stored source"))?,
            )?;
            let to = match &request.to {
                Some(to) => super::rfc3339("to", to)?,
                None => crate::store::now_text(),
            };
            let limit = request.limit.unwrap_or(DEFAULT_STORED_LIMIT);
            if limit == 0 || limit > DEFAULT_STORED_LIMIT {
                return Err(ApiError::bad_request(format!(
                    "limit: must be between 1 and {DEFAULT_STORED_LIMIT}"
                )));
            }
            if source == Source::Events {
                app.store
                    .flow_events(&id, &from, &to, i64::from(limit))
                    .await?
                    .iter()
                    .filter_map(|body| serde_json::from_str(body).ok())
                    .collect()
            } else {
                audit_events(&app, &scope, from, to, limit).await?
            }
        }
    };
    // Who replayed what is recorded before the replay runs (its steps that send are skipped,
    // but it reads the flow's stored events or the audit log).
    app.store
        .record_audit(vec![AuditDraft::new(
            &scope.platform_id,
            Some(&scope.project_id),
            &actor,
            AuditAction::FlowReplayed,
            json!({
                "flow": {"id": id, "displayName": active.record.name},
                "events": events.len(),
                "live": false,
            }),
        )])
        .await?;
    // Granted secrets read as absent and nothing is remembered: steps that send are skipped
    // in a replay anyway, and a replay must not touch what live runs keep.
    let executor = Executor::new(app.sandbox.clone(), None)
        .with_memory(Arc::new(crate::memory::LocalMemory::default()));
    let report = replay::replay(&executor, &scope, &id, &active.flow, events, |_, _, _| {}).await;
    Ok(Json(json!(report)))
}

/// The audit events of the flow's project in `[from, to)`, at most `limit`.
async fn audit_events(
    app: &AppState,
    scope: &Scope,
    from: String,
    to: String,
    limit: u32,
) -> ApiResult<Vec<Value>> {
    let mut events = Vec::new();
    let mut cursor = None;
    loop {
        let page = app
            .store
            .list_audit(&AuditFilter {
                limit: 500.min(limit - events.len() as u32),
                cursor,
                project_ids: vec![scope.project_id.clone()],
                created_after: Some(from.clone()),
                created_before: Some(to.clone()),
                ..AuditFilter::default()
            })
            .await?;
        events.extend(page.data);
        match page.next.as_deref().and_then(Cursor::decode) {
            Some(next) if (events.len() as u32) < limit => cursor = Some(next),
            _ => return Ok(events),
        }
    }
}
