//! `/v1/secrets`: write-only secrets. Values go in and are never returned, logged or traced.

use super::guard::{self, Caller, Route};
use super::openapi::Object;
use super::{ApiError, ApiResult, AppState};
use crate::access::{Need, Target};
use crate::flow::validate::check_secret_name;
use crate::store::Role;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

/// Names are visible to editors (who grant them to steps); values are set by project admins.
pub fn routes() -> Vec<Route> {
    let project = Target::QueryProject;
    vec![
        guard::get("/secrets", Need::Project(Role::Editor, project), list)
            .doc("Lists the names of the project's secrets (never values)")
            .page::<Object>(),
        guard::put("/secrets/{name}", Need::Project(Role::Admin, project), set)
            .doc("Sets a secret: created (201) or replaced (204)")
            .body::<SecretBody>()
            .empty(StatusCode::CREATED)
            .empty(StatusCode::NO_CONTENT),
        guard::delete(
            "/secrets/{name}",
            Need::Project(Role::Admin, project),
            remove,
        )
        .doc("Deletes a secret")
        .empty(StatusCode::NO_CONTENT),
    ]
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    value: String,
}

/// Longest secret value accepted.
const MAX_SECRET_BYTES: usize = 64 << 10;

async fn set(
    State(app): State<AppState>,
    caller: Caller,
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
    let created = app
        .secrets
        .put(&caller.actor(), caller.project()?, &name, &body.value)
        .await?;
    Ok(if created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    })
}

async fn list(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let data = app.secrets.list(caller.project()?).await?;
    Ok(Json(
        json!({ "data": data, "next": null, "previous": null }),
    ))
}

async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if app
        .secrets
        .delete(&caller.actor(), caller.project()?, &name)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("secret {name} not found")))
    }
}
