//! `/v1/event-destinations`: where the engine's audit events are streamed, their delivery
//! attempts, redelivery, secret rotation and the "test webhook" send.

use super::{ApiError, ApiResult, AppState, RequestActor};
use crate::catalog::Catalog;
use crate::store::new_id;
use crate::stream::{DestinationError, DestinationInput};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Instant;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/event-destinations", get(list).post(create))
        .route("/event-destinations/test", post(test))
        .route(
            "/event-destinations/{id}",
            get(read).patch(patch).delete(remove),
        )
        .route("/event-destinations/{id}/deliveries", get(deliveries))
        .route("/event-destinations/{id}/redeliver", post(redeliver))
        .route("/event-destinations/{id}/rotate-secret", post(rotate))
}

fn input(body: &[u8]) -> ApiResult<DestinationInput> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("body: {e}")))
}

async fn create(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let scope = app.store.default_scope().await?;
    let view = app
        .destinations
        .create(&actor, &scope, input(&body)?)
        .await
        .map_err(destinations_error)?;
    let location = format!("/v1/event-destinations/{}", view.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(json!(view)),
    )
        .into_response())
}

async fn list(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    let data: Vec<Value> = app
        .store
        .list_destinations()
        .await?
        .iter()
        .map(|d| json!(app.destinations.view(d)))
        .collect();
    Ok(Json(
        json!({ "data": data, "next": null, "previous": null }),
    ))
}

async fn read(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let record = app
        .store
        .get_destination(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("destination {id} not found")))?;
    Ok(Json(json!(app.destinations.view(&record))))
}

async fn patch(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let view = app
        .destinations
        .update(&actor, &id, input(&body)?)
        .await
        .map_err(destinations_error)?;
    app.destinations.wake();
    Ok(Json(json!(view)))
}

async fn remove(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if app.store.delete_destination(&actor, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("destination {id} not found")))
    }
}

async fn rotate(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let view = app
        .destinations
        .rotate_secret(&actor, &id)
        .await
        .map_err(destinations_error)?;
    Ok(Json(json!(view)))
}

async fn deliveries(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    if app.store.get_destination(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("destination {id} not found")));
    }
    let data = app.store.list_deliveries(&id, 500).await?;
    Ok(Json(
        json!({ "data": data, "next": null, "previous": null }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RedeliverBody {
    event_id: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
}

/// Normalises an RFC 3339 bound to the stored form, naming the field when it is not one.
fn bound(name: &str, value: Option<String>) -> ApiResult<Option<String>> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(&v)
                .map(|t| {
                    t.with_timezone(&chrono::Utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                })
                .map_err(|_| ApiError::bad_request(format!("{name}: not an RFC 3339 time: {v:?}")))
        })
        .transpose()
}

async fn redeliver(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let request: RedeliverBody = if body.is_empty() {
        RedeliverBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?
    };
    if app.store.get_destination(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("destination {id} not found")));
    }
    let selection = crate::store::Redelivery {
        event_id: request.event_id,
        created_after: bound("createdAfter", request.created_after)?,
        created_before: bound("createdBefore", request.created_before)?,
    };
    let queued = app.store.redeliver(&id, &selection).await?;
    app.destinations.wake();
    Ok(Json(json!({ "queued": queued })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TestBody {
    destination_id: Option<String>,
    url: Option<String>,
    event: String,
}

/// Sends the catalog's sample of an event, signed like a real delivery, and reports the answer.
async fn test(State(app): State<AppState>, body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let request: TestBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let (_, event) = Catalog::builtin().find_any(&request.event).ok_or_else(|| {
        ApiError::bad_request(format!("event: unknown event type {:?}", request.event))
    })?;
    let record = match (request.destination_id, request.url) {
        (Some(id), None) => app
            .store
            .get_destination(&id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("destination {id} not found")))?,
        (None, Some(url)) => {
            let scope = app.store.default_scope().await?;
            let input = DestinationInput {
                name: Some("test".into()),
                url: Some(url),
                ..DestinationInput::default()
            };
            app.destinations
                .unsaved(&scope, input)
                .await
                .map_err(destinations_error)?
                .0
        }
        _ => {
            return Err(ApiError::bad_request(
                "body: give exactly one of \"destinationId\" or \"url\"",
            ));
        }
    };
    let started = Instant::now();
    let outcome = app
        .destinations
        .send(
            &record,
            &format!("test_{}", new_id()),
            event.sample.to_string().as_bytes(),
        )
        .await;
    Ok(Json(json!({
        "status": outcome.status,
        "durationMs": started.elapsed().as_secs_f64() * 1000.0,
        "error": outcome.error,
    })))
}

/// Maps service errors: invalid input is 400 naming the field; the rest as store errors.
fn destinations_error(error: DestinationError) -> ApiError {
    match error {
        DestinationError::Invalid(message) => ApiError::bad_request(message),
        DestinationError::Store(e) => e.into(),
    }
}
