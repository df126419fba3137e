//! `/healthz` and `/metrics`: unauthenticated, for load balancers and Prometheus.

use super::{ApiResult, AppState};
use crate::metrics::{Format, MAX_COUNTED_BACKLOG, MAX_SAMPLED_DESTINATIONS, Sample};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
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

/// Prometheus metrics ([`crate::metrics`]) in the format the `Accept` header asks for:
/// OpenMetrics text when it names it (Prometheus does), else the Prometheus text format.
/// Queue depth and the per-destination backlog are read from the store now, so every process
/// reports the same values for them.
async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<impl IntoResponse> {
    let (queued, running) = app.store.queue_depth().await?;
    let destinations = app
        .store
        .delivery_backlog(MAX_SAMPLED_DESTINATIONS, MAX_COUNTED_BACKLOG)
        .await?;
    let sample = Sample {
        queued,
        running,
        in_flight: app.queue.in_flight(),
        destinations,
        now_ms: crate::store::epoch_ms(),
    };
    let format = Format::from_accept(
        headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok()),
    );
    let text = app.metrics.render(&sample, format);
    Ok(([(header::CONTENT_TYPE, format.content_type())], text))
}
