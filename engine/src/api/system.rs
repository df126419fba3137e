//! `/healthz` and `/metrics`: unauthenticated, for load balancers and Prometheus.

use super::{ApiResult, AppState};
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn healthz(State(app): State<AppState>) -> ApiResult<impl IntoResponse> {
    // A store round trip: healthy means able to serve, not just alive.
    app.store.queue_depth().await?;
    Ok(axum::Json(serde_json::json!({ "status": "ok" })))
}

async fn metrics(State(app): State<AppState>) -> ApiResult<impl IntoResponse> {
    let (queued, running) = app.store.queue_depth().await?;
    let text = app.metrics.render(queued, running, app.queue.in_flight());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
