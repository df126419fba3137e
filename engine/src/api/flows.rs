//! `/v1/flows`: create, list, read, replace (new version) and delete flows. Bodies are JSON, or
//! YAML when sent as `application/yaml`.
//!
//! Lifecycle, after Activepieces: `PUT /v1/flows/{id}` saves and publishes a new version, as it
//! always did, so existing clients keep working; `PUT …?draft=true` saves a draft that webhooks
//! and schedules do not run until `POST /v1/flows/{id}/publish`. `POST …/disable` turns the flow
//! off (its webhook answers 404 like a missing flow and stores nothing; its schedule does not
//! fire) and `POST …/enable` turns it back on. Each writes its audit event (`flow.updated` with
//! `data.changes`, `flow.published`, `flow.deactivated`, `flow.activated`).
//!
//! Webhook credentials (`trigger.auth`) never leave in clear: every answer that carries a
//! definition masks a literal credential as `********`, like destination header values
//! (a `{{secrets.NAME}}` reference is shown as written: it names a secret, it is not one). A
//! replace that sends the mask back keeps the stored credential, so saving what was read
//! (the console's YAML editor, `flow export` then deploy) does not lose it.

use super::guard::{self, Caller, Route};
use super::openapi::{FLOW_MEDIA, Object};
use super::{ApiError, ApiResult, AppState, PageParams, Params, RequestActor};
use crate::access::{Need, Target};
use crate::flow::Flow;
use crate::registry::ActiveFlow;
use crate::store::{FlowRecord, FlowState, Role};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub fn routes() -> Vec<Route> {
    let viewer = Need::Project(Role::Viewer, Target::Flow);
    let editor = Need::Project(Role::Editor, Target::Flow);
    vec![
        guard::get("/flows", Need::Project(Role::Viewer, Target::Visible), list)
            .doc("Lists flows (their published versions), newest first")
            .query::<ListParams>()
            .page::<FlowRecord>(),
        guard::post(
            "/flows",
            Need::Project(Role::Editor, Target::QueryProject),
            create,
        )
        .doc("Creates a flow from its definition (JSON or YAML)")
        .body_as::<Flow>(FLOW_MEDIA)
        .returns::<FlowRecord>(StatusCode::CREATED),
        guard::get("/flows/{id}", viewer, read)
            .doc("The flow as it serves now, with its webhook URL and any pending draft")
            .returns::<FlowRecord>(StatusCode::OK),
        guard::put("/flows/{id}", editor, replace)
            .doc("Saves a new version: published at once, or kept as a draft with ?draft=true")
            .query::<ReplaceParams>()
            .body_as::<Flow>(FLOW_MEDIA)
            .returns::<FlowRecord>(StatusCode::OK),
        guard::delete("/flows/{id}", editor, remove)
            .doc("Deletes a flow")
            .empty(StatusCode::NO_CONTENT),
        guard::get("/flows/{id}/versions", viewer, versions)
            .doc("Every saved version of a flow, newest first")
            .page::<Object>(),
        guard::get("/flows/{id}/versions/{version}", viewer, version)
            .doc("One saved version: the record as JSON, or its definition alone as YAML")
            .query::<VersionParams>()
            .returns::<FlowRecord>(StatusCode::OK)
            .returns_as::<Flow>(StatusCode::OK, "application/yaml"),
        guard::post("/flows/{id}/publish", editor, publish)
            .doc("Publishes the flow's draft (409 when there is none)")
            .returns::<FlowRecord>(StatusCode::OK),
        guard::post("/flows/{id}/enable", editor, enable)
            .doc("Turns the flow on: its webhook and schedule run again")
            .returns::<FlowRecord>(StatusCode::OK),
        guard::post("/flows/{id}/disable", editor, disable)
            .doc("Turns the flow off: its webhook answers 404 and its schedule is idle")
            .returns::<FlowRecord>(StatusCode::OK),
    ]
}

/// Every saved version of a flow, newest first; `published` marks the one webhooks run and
/// `draft` the one waiting to be published.
async fn versions(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let active = app
        .flows
        .current(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow {id} not found")))?;
    let data: Vec<Value> = app
        .store
        .flow_versions(&id)
        .await?
        .into_iter()
        .map(|(version, created)| {
            json!({
                "version": version,
                "created": created,
                "published": version == active.record.version,
                "draft": Some(version) == active.state.draft_version,
            })
        })
        .collect();
    Ok(Json(json!({"data": data, "next": null, "previous": null})))
}

/// Makes the flow's draft the version webhooks and schedules run (`409` when there is none).
async fn publish(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let active = app.flows.publish(&actor, &id).await?;
    Ok(Json(render(&active)))
}

async fn enable(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_enabled(&app, &actor, &id, true).await
}

async fn disable(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_enabled(&app, &actor, &id, false).await
}

/// Enabling an enabled flow (or disabling a disabled one) answers the flow and writes no event.
async fn set_enabled(
    app: &AppState,
    actor: &crate::store::Actor,
    id: &str,
    enabled: bool,
) -> ApiResult<Json<Value>> {
    let active = app
        .flows
        .set_enabled(actor, id, enabled)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow {id} not found")))?;
    Ok(Json(render(&active)))
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

/// `?format=yaml` (or `Accept: application/yaml`) answers a version's definition alone as YAML,
/// ready to edit and save again.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct VersionParams {
    format: Option<String>,
}

/// One saved version of a flow, with its definition (credentials masked), as JSON or YAML.
async fn version(
    State(app): State<AppState>,
    Path((id, version)): Path<(String, String)>,
    Params(params): Params<VersionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let yaml = match params.format.as_deref() {
        Some("yaml") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format: must be json or yaml, not {other:?}"
            )));
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("yaml")),
    };
    let number: i64 = version
        .parse()
        .map_err(|_| ApiError::bad_request(format!("version: not a number: {version:?}")))?;
    let record = app
        .store
        .get_flow_version(&id, number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow {id} has no version {number}")))?;
    let body = masked_record(&record);
    if yaml {
        let text = crate::yaml::to_string(&body["definition"]).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("flow {id} version {number}: {e}"),
            )
        })?;
        return Ok(([(header::CONTENT_TYPE, "application/yaml")], text).into_response());
    }
    Ok(Json(body).into_response())
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

/// A flow as every answer shows it: masked, with its webhook path and lifecycle.
pub(crate) fn render(active: &ActiveFlow) -> Value {
    let r = &active.record;
    let mut body = masked_record(r);
    body["webhookUrl"] = json!(format!("/v1/webhooks/{}", r.id));
    lifecycle(&mut body, &active.state);
    body
}

/// A flow's lifecycle beside its record (whose `version` is the published one): `enabled`,
/// `publishedVersion` and `draftVersion` (`null` when no draft is pending), in every answer that
/// shows a flow, lists included.
fn lifecycle(body: &mut Value, state: &FlowState) {
    body["enabled"] = json!(state.enabled);
    body["publishedVersion"] = body["version"].clone();
    body["draftVersion"] = json!(state.draft_version);
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
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "FlowListParams")]
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
    let ids = page.data.iter().map(|r| r.id.clone()).collect();
    let states: std::collections::HashMap<String, FlowState> =
        app.store.flow_states(ids).await?.into_iter().collect();
    let mut body = json!(page);
    if let Some(records) = body["data"].as_array_mut() {
        for record in records {
            crate::flow::model::mask_credentials(&mut record["definition"]);
            // Deleted between the two reads: shown as it was listed, without a state.
            if let Some(state) = record["id"].as_str().and_then(|id| states.get(id)) {
                lifecycle(record, state);
            }
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

/// `?draft=true` saves a draft instead of publishing.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct ReplaceParams {
    draft: Option<bool>,
}

/// Saves a new version: published at once (what clients that predate drafts expect), or with
/// `?draft=true` kept as a draft. A draft answers the flow as it serves now, with `draftVersion`.
async fn replace(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
    Params(params): Params<ReplaceParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let mut value = definition(&headers, &body)?;
    // The mask stands for the credential stored last: a pending draft's (it may have changed
    // the credential, and the console's editor builds the next save on it), else (no draft,
    // or none of that kind in it) the published version's.
    if let Some(current) = app.flows.current(&id).await? {
        if let Some(draft) = current.state.draft_version
            && let Some(pending) = app.store.get_flow_version(&id, draft).await?
        {
            crate::flow::model::restore_masked_credentials(&mut value, &pending.definition);
        }
        crate::flow::model::restore_masked_credentials(&mut value, &current.record.definition);
    }
    check_save(&value)?;
    if params.draft == Some(true) {
        let (active, _) = app.flows.save_draft(&actor, &id, value).await?;
        return Ok(Json(render(&active)));
    }
    let active = app.flows.update(&actor, &id, value).await?;
    Ok(Json(render(&active)))
}

async fn remove(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if app.flows.delete(&actor, &id).await? {
        app.metrics.forget_flow(&id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("flow {id} not found")))
    }
}
