//! `/v1/secrets`: write-only secrets. Values go in and are never returned, logged or traced.

use super::{ApiError, ApiResult, AppState, RequestActor};
use crate::flow::validate::check_secret_name;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/secrets", get(list))
        .route("/secrets/{name}", put(set).delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    value: String,
}

/// Longest secret value accepted.
const MAX_SECRET_BYTES: usize = 64 << 10;

async fn set(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    check_secret_name(&name).map_err(|e| ApiError::bad_request(format!("name: {e}")))?;
    // The error must not echo the body: it holds the secret.
    let body: SecretBody = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("body: expected {\"value\": \"<secret>\"}"))?;
    if body.value.is_empty() || body.value.len() > MAX_SECRET_BYTES {
        return Err(ApiError::bad_request(format!(
            "value: must be 1 to {MAX_SECRET_BYTES} bytes"
        )));
    }
    let scope = app.store.default_scope().await?;
    let created = app.secrets.put(&actor, &scope, &name, &body.value).await?;
    Ok(if created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    })
}

async fn list(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    let scope = app.store.default_scope().await?;
    let data = app.secrets.list(&scope).await?;
    Ok(Json(
        json!({ "data": data, "next": null, "previous": null }),
    ))
}

async fn remove(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let scope = app.store.default_scope().await?;
    if app.secrets.delete(&actor, &scope, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("secret {name} not found")))
    }
}
