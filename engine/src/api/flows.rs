//! `/v1/flows`: create, list, read, replace (new version) and delete flows. Bodies are JSON, or
//! YAML when sent as `application/yaml`.

use super::{ApiError, ApiResult, AppState, PageParams, Params, RequestActor};
use crate::registry::ActiveFlow;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/flows", get(list).post(create))
        .route("/flows/{id}", get(read).put(replace).delete(remove))
}

/// Parses a flow body by its content type.
fn definition(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.contains("yaml") {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("body is not valid YAML: {e}")))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))
    }
}

fn render(active: &ActiveFlow) -> Value {
    let r = &active.record;
    let mut body = json!(r);
    body["webhookUrl"] = json!(format!("/v1/webhooks/{}", r.id));
    body
}

async fn create(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let value = definition(&headers, &body)?;
    let scope = app.store.default_scope().await?;
    let active = app.flows.create(&actor, &scope, value).await?;
    let location = format!("/v1/flows/{}", active.record.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(render(&active)),
    )
        .into_response())
}

async fn list(
    State(app): State<AppState>,
    Params(params): Params<PageParams>,
) -> ApiResult<Json<Value>> {
    let (limit, cursor) = params.parse()?;
    let page = app.flows.list(limit, cursor).await?;
    Ok(Json(json!(page)))
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
    let value = definition(&headers, &body)?;
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
