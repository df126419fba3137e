//! `/v1/plugins`: list installed plugins, show one version; install a component (raw body)
//! without a restart, remove a version no flow uses. Installed versions are immutable: the same
//! bytes again are a 200 that changes nothing, other bytes under an installed `name@version` a
//! 409 (after a removal, the version may be installed again with any bytes).

use super::guard::{self, Route};
use super::{ApiError, ApiResult, AppState, RequestActor};
use crate::access::Need;
use crate::wasm::{LoadError, PluginInfo};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Largest component accepted by upload.
pub const MAX_UPLOAD_BYTES: usize = 32 << 20;

/// Installed plugins serve every project of the platform, so installing one is a platform
/// admin's call; everyone signed in may list them (to write steps).
pub fn routes() -> Vec<Route> {
    vec![
        guard::get("/plugins", Need::SignedIn, list)
            .doc("Lists the plugins this server runs (built-in and installed)")
            .page::<PluginInfo>(),
        guard::post("/plugins", Need::Platform, install)
            .body_limit(MAX_UPLOAD_BYTES)
            .doc("Installs a plugin component (201), or finds the same bytes installed (200)")
            .binary_body(&["application/wasm", "application/octet-stream"])
            .returns::<PluginInfo>(StatusCode::CREATED)
            .returns::<PluginInfo>(StatusCode::OK),
        guard::get("/plugins/{name}/{version}", Need::SignedIn, show)
            .doc("One plugin version: description, input schema, side effects, digest")
            .returns::<PluginInfo>(StatusCode::OK),
        guard::delete("/plugins/{name}/{version}", Need::Platform, remove)
            .doc("Removes an installed plugin version that no flow uses")
            .empty(StatusCode::NO_CONTENT),
    ]
}

/// One plugin version: what the list shows of it (description, input schema, side effects,
/// digest, built-in or not).
async fn show(
    State(app): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let info = app
        .sandbox
        .plugin(&name, &version)
        .ok_or_else(|| ApiError::not_found(format!("plugin {name}@{version} not found")))?;
    Ok(Json(json!(info)))
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
    let (info, installed) = crate::plugins::install_plugin(&app.sandbox, &app.store, &actor, &body)
        .await
        .map_err(|e| match e {
            InstallError::Load(LoadError::TooLarge { .. }) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            InstallError::Load(_) => ApiError::bad_request(e.to_string()),
            InstallError::Builtin(_) | InstallError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            InstallError::Store(error) => ApiError::from(error),
        })?;
    let status = match installed {
        crate::plugins::Installed::New => StatusCode::CREATED,
        crate::plugins::Installed::Unchanged => StatusCode::OK,
    };
    Ok((status, Json(json!(info))))
}

/// Removes an installed version no flow uses (`204`). `409` for a built-in, a plugin-directory
/// file, or a version a flow's published version or draft uses (the flows listed in `flows`);
/// older versions in flows' histories do not count.
async fn remove(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    crate::plugins::remove_plugin(&app.sandbox, &app.store, &actor, &name, &version)
        .await
        .map_err(|e| match e {
            RemoveError::NotFound(_) => ApiError::not_found(e.to_string()),
            RemoveError::InUse(_, ref users) => {
                let flows = json!({ "flows": users });
                ApiError::new(StatusCode::CONFLICT, e.to_string()).with_extra(flows)
            }
            RemoveError::Builtin(_) | RemoveError::Directory(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            RemoveError::Store(error) => ApiError::from(error),
        })?;
    if !app.sandbox.plugins().iter().any(|p| p.name == name) {
        app.metrics.forget_plugin(&name);
    }
    Ok(StatusCode::NO_CONTENT)
}

pub use crate::plugins::{InstallError, RemoveError};
