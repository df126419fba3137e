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

/// Healthy means able to serve, not just alive: the store answers a round trip and its writer
/// is running, and no background task is down or crash-looping (`crate::supervise`).
/// Otherwise `503` with the reason, so a load balancer takes this process out.
async fn healthz(State(app): State<AppState>) -> axum::response::Response {
    let health = match app.store.health().await {
        Ok(()) => app.metrics.tasks.health(),
        Err(error) => Err(error.to_string()),
    };
    match health {
        Ok(()) => axum::Json(serde_json::json!({ "status": "ok" })).into_response(),
        Err(error) => {
            tracing::error!(%error, "health check failed");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "status": "unavailable", "reason": error })),
            )
                .into_response()
        }
    }
}

async fn metrics(State(app): State<AppState>) -> ApiResult<impl IntoResponse> {
    let (queued, running) = app.store.queue_depth().await?;
    let text = app.metrics.render(queued, running, app.queue.in_flight());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
