//! `/v1/flows`: create, list, read, replace (new version) and delete flows. Bodies are JSON, or
//! YAML when sent as `application/yaml`.
//!
//! Webhook credentials (`trigger.auth`) never leave in clear: every answer that carries a
//! definition masks a literal credential as `********`, like destination header values
//! (a `{{secrets.NAME}}` reference is shown as written: it names a secret, it is not one). A
//! replace that sends the mask back keeps the stored credential, so saving what was read
//! (the console's YAML editor, `flow export` then deploy) does not lose it.

use super::guard::{self, Caller, Route};
use super::{ApiError, ApiResult, AppState, PageParams, Params, RequestActor};
use crate::access::{Need, Target};
use crate::registry::ActiveFlow;
use crate::store::Role;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub fn routes() -> Vec<Route> {
    vec![
        guard::get("/flows", Need::Project(Role::Viewer, Target::Visible), list),
        guard::post(
            "/flows",
            Need::Project(Role::Editor, Target::QueryProject),
            create,
        ),
        guard::get(
            "/flows/{id}",
            Need::Project(Role::Viewer, Target::Flow),
            read,
        ),
        guard::put(
            "/flows/{id}",
            Need::Project(Role::Editor, Target::Flow),
            replace,
        ),
        guard::delete(
            "/flows/{id}",
            Need::Project(Role::Editor, Target::Flow),
            remove,
        ),
        guard::get(
            "/flows/{id}/versions",
            Need::Project(Role::Viewer, Target::Flow),
            versions,
        ),
        guard::get(
            "/flows/{id}/versions/{version}",
            Need::Project(Role::Viewer, Target::Flow),
            version,
        ),
    ]
}

/// Every saved version of a flow, newest first.
async fn versions(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let data: Vec<Value> = app
        .store
        .flow_versions(&id)
        .await?
        .into_iter()
        .map(|(version, created)| json!({"version": version, "created": created}))
        .collect();
    Ok(Json(json!({"data": data, "next": null, "previous": null})))
}

/// A flow record as answers show it: its webhook credential masked.
pub(crate) fn masked_record(record: &crate::store::FlowRecord) -> Value {
    let mut body = json!(record);
    crate::flow::model::mask_credentials(&mut body["definition"]);
    body
}

/// Refuses what may no longer be saved ([`crate::flow::validate::save_problems`]) with every
/// problem of the definition, by path, as an invalid flow is refused.
pub(crate) fn check_save(value: &Value) -> ApiResult<()> {
    let problems = crate::flow::validate::save_problems(value);
    if problems.is_empty() {
        return Ok(());
    }
    let mut all = crate::flow::validate_value(value);
    all.extend(problems);
    Err(ApiError::invalid(crate::flow::Problems(all)))
}

/// One saved version of a flow, with its definition.
async fn version(
    State(app): State<AppState>,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let number: i64 = version
        .parse()
        .map_err(|_| ApiError::bad_request(format!("version: not a number: {version:?}")))?;
    let record = app
        .store
        .get_flow_version(&id, number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow {id} has no version {number}")))?;
    Ok(Json(masked_record(&record)))
}

/// Parses a flow body by its content type.
fn definition(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.contains("yaml") {
        crate::yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("body is not valid YAML: {e}")))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))
    }
}

fn render(active: &ActiveFlow) -> Value {
    let r = &active.record;
    let mut body = masked_record(r);
    body["webhookUrl"] = json!(format!("/v1/webhooks/{}", r.id));
    body
}

async fn create(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let value = definition(&headers, &body)?;
    check_save(&value)?;
    let scope = caller.project()?;
    let active = app.flows.create(&caller.actor(), scope, value).await?;
    let location = format!("/v1/flows/{}", active.record.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(render(&active)),
    )
        .into_response())
}

/// `projectId` narrows the list to one (visible) project.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    limit: Option<u32>,
    cursor: Option<String>,
    project_id: Option<String>,
}

async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Params(params): Params<ListParams>,
) -> ApiResult<Json<Value>> {
    let (limit, cursor) = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .parse()?;
    let only = super::narrow(caller.visible, params.project_id);
    let page = app.flows.list(limit, cursor, only).await?;
    let mut body = json!(page);
    if let Some(records) = body["data"].as_array_mut() {
        for record in records {
            crate::flow::model::mask_credentials(&mut record["definition"]);
        }
    }
    Ok(Json(body))
}

async fn read(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let active = app
        .flows
        .current(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow {id} not found")))?;
    Ok(Json(render(&active)))
}

async fn replace(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let mut value = definition(&headers, &body)?;
    // The mask stands for the credential stored now.
    if let Some(current) = app.flows.current(&id).await? {
        crate::flow::model::restore_masked_credentials(&mut value, &current.record.definition);
    }
    check_save(&value)?;
    let active = app.flows.update(&actor, &id, value).await?;
    Ok(Json(render(&active)))
}

async fn remove(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if app.flows.delete(&actor, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("flow {id} not found")))
    }
}
