//! `/v1/plugins`: list installed plugins; install a component (raw body) without a restart.

use super::{ApiError, ApiResult, AppState, RequestActor};
use crate::wasm::LoadError;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// Largest component accepted by upload.
pub const MAX_UPLOAD_BYTES: usize = 32 << 20;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/plugins",
        get(list)
            .post(install)
            .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
    )
}

async fn list(State(app): State<AppState>) -> Json<Value> {
    Json(json!({ "data": app.sandbox.plugins(), "next": null, "previous": null }))
}

async fn install(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "body: expected the component's bytes (application/wasm)",
        ));
    }
    let info = crate::plugins::install_plugin(&app.sandbox, &app.store, &actor, &body)
        .await
        .map_err(|e| match e {
            InstallError::Load(LoadError::TooLarge { .. }) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            InstallError::Load(_) => ApiError::bad_request(e.to_string()),
            InstallError::Builtin(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            InstallError::Store(error) => ApiError::from(error),
        })?;
    Ok((StatusCode::CREATED, Json(json!(info))))
}

pub use crate::plugins::InstallError;
