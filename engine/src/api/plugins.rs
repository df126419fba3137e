//! `/v1/plugins`: the installed plugins with their input schemas.

use super::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new().route("/plugins", get(list))
}

async fn list(State(app): State<AppState>) -> Json<Value> {
    Json(json!({ "data": app.sandbox.plugins(), "next": null, "previous": null }))
}
