//! `/v1/flow-runs`: list and inspect runs, retry a failed run from its failed step.

use super::guard::{self, Caller, Route};
use super::openapi::Object;
use super::{ApiError, ApiResult, AppState, PageParams, Params, RequestActor};
use crate::access::{Need, Target};
use crate::store::{Environment, Role, RunDetail, RunFilter, RunStatus, RunSummary};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Vec<Route> {
    vec![
        guard::get(
            "/flow-runs",
            Need::Project(Role::Viewer, Target::Visible),
            list,
        )
        .doc("Lists runs, newest first (live runs unless environment says otherwise)")
        .query::<ListParams>()
        .page::<RunSummary>(),
        guard::get(
            "/flow-runs/{id}",
            Need::Project(Role::Viewer, Target::Run),
            read,
        )
        .doc("One run with its trigger event and every step")
        .returns::<RunDetail>(StatusCode::OK),
        guard::post(
            "/flow-runs/{id}/retry",
            Need::Project(Role::Operator, Target::Run),
            retry,
        )
        .doc("Queues a failed run again from its failed step")
        .returns::<Object>(StatusCode::ACCEPTED),
    ]
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "RunListParams")]
struct ListParams {
    flow_id: Option<String>,
    status: Option<String>,
    /// `PRODUCTION` (the default: live runs only), `TESTING` (test runs and replays' records)
    /// or `ALL`.
    environment: Option<String>,
    project_id: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    // Not `#[serde(flatten)]`: flattened query structs cannot parse numbers.
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Params(params): Params<ListParams>,
) -> ApiResult<Json<Value>> {
    let (limit, cursor) = PageParams {
        limit: params.limit,
        cursor: params.cursor.clone(),
    }
    .parse()?;
    let status = match &params.status {
        None => None,
        Some(text) => Some(
            text.parse::<RunStatus>()
                .map_err(|e| ApiError::bad_request(format!("status: {e}")))?,
        ),
    };
    let environment = match params.environment.as_deref() {
        None => Some(Environment::Production),
        Some(text) if text.eq_ignore_ascii_case("all") => None,
        Some(text) => Some(
            text.to_ascii_uppercase()
                .parse::<Environment>()
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "environment: {text:?} is not PRODUCTION, TESTING or ALL"
                    ))
                })?,
        ),
    };
    let filter = RunFilter {
        flow_id: params.flow_id,
        projects: super::narrow(caller.visible, params.project_id),
        created_after: params
            .created_after
            .as_deref()
            .map(|v| super::rfc3339("createdAfter", v))
            .transpose()?,
        created_before: params
            .created_before
            .as_deref()
            .map(|v| super::rfc3339("createdBefore", v))
            .transpose()?,
        status,
        environment,
        limit,
        cursor,
    };
    Ok(Json(json!(app.store.list_runs(&filter).await?)))
}

async fn read(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let run = app
        .store
        .get_run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id} not found")))?;
    Ok(Json(json!(run)))
}

async fn retry(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let run = app.store.retry_run(&actor, &id).await?;
    app.queue.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "runId": run.id, "status": run.status })),
    ))
}
