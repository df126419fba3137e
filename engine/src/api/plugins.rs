//! `/v1/plugins`: list installed plugins; install a component (raw body) without a restart.

use super::guard::{self, Route};
use super::{ApiError, ApiResult, AppState, RequestActor};
use crate::access::Need;
use crate::wasm::LoadError;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Largest component accepted by upload.
pub const MAX_UPLOAD_BYTES: usize = 32 << 20;

/// Installed plugins serve every project of the platform, so installing one is a platform
/// admin's call; everyone signed in may list them (to write steps).
pub fn routes() -> Vec<Route> {
    vec![
        guard::get("/plugins", Need::SignedIn, list),
        guard::post("/plugins", Need::Platform, install).body_limit(MAX_UPLOAD_BYTES),
    ]
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
