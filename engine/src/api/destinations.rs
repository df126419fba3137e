//! `/v1/event-destinations`: where the engine's audit events are streamed, their delivery
//! attempts, redelivery, secret rotation and the "test webhook" send.

use super::guard::{self, Caller, Route};
use super::openapi::Object;
use super::{ApiError, ApiResult, AppState, RequestActor};
use crate::access::{Need, Target};
use crate::catalog::Catalog;
use crate::store::{DeliveryRecord, DestinationRecord, DestinationScope, Role, Scope, new_id};
use crate::stream::{DestinationError, DestinationInput, DestinationView};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Instant;

/// Platform admins manage every destination; a project admin only the PROJECT destinations of
/// their project (as in Activepieces).
pub fn routes() -> Vec<Route> {
    let one = Need::Project(Role::Admin, Target::Destination);
    let new = Need::Project(Role::Admin, Target::QueryOrPlatform);
    vec![
        guard::get(
            "/event-destinations",
            Need::Project(Role::Admin, Target::Visible),
            list,
        )
        .doc("Lists the event destinations the caller manages")
        .page::<DestinationView>(),
        guard::post("/event-destinations", new, create)
            .doc("Creates a destination: its verification token and signing secret are shown here")
            .body::<DestinationInput>()
            .returns::<DestinationView>(StatusCode::CREATED),
        guard::post("/event-destinations/test", new, test)
            .doc("Sends the catalog's sample of an event, signed, and reports the answer")
            .body::<TestBody>()
            .returns::<Object>(StatusCode::OK),
        guard::get("/event-destinations/{id}", one, read)
            .doc("One destination (header values masked, no secrets)")
            .returns::<DestinationView>(StatusCode::OK),
        guard::patch("/event-destinations/{id}", one, patch)
            .doc("Changes a destination; absent fields stay as they are")
            .body::<DestinationInput>()
            .returns::<DestinationView>(StatusCode::OK),
        guard::delete("/event-destinations/{id}", one, remove)
            .doc("Deletes a destination")
            .empty(StatusCode::NO_CONTENT),
        guard::get("/event-destinations/{id}/deliveries", one, deliveries)
            .doc("The latest delivery attempts to a destination")
            .page::<DeliveryRecord>(),
        guard::post("/event-destinations/{id}/redeliver", one, redeliver)
            .doc("Queues audit events for delivery again (one, a time range, or every failed one)")
            .body::<RedeliverBody>()
            .returns::<Object>(StatusCode::OK),
        guard::post("/event-destinations/{id}/rotate-secret", one, rotate)
            .doc("Rotates the signing secret; the old one signs too for 24 hours")
            .returns::<DestinationView>(StatusCode::OK),
    ]
}

/// The scope and project a new destination gets: PROJECT in the project the guard resolved
/// (`?projectId=` or the caller's own), PLATFORM when a platform admin asks for it (or names
/// no project). A body `projectId` must agree with the resolved project.
async fn placement(
    app: &AppState,
    caller: &Caller,
    input: &mut DestinationInput,
) -> ApiResult<Scope> {
    let asked = input.scope.take();
    let named = input.project_id.take();
    let (scope, project) = match (&caller.scope, asked) {
        (Some(_), Some(DestinationScope::Platform)) if !caller.principal.is_platform_admin() => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "scope: PLATFORM destinations need the platform-admin role",
            ));
        }
        (_, Some(DestinationScope::Platform)) => (DestinationScope::Platform, "default".into()),
        (Some(resolved), _) => {
            if named.as_ref().is_some_and(|n| *n != resolved.project_id) {
                return Err(ApiError::bad_request(format!(
                    "projectId: {} does not match the project of the request ({}); pass it as ?projectId=",
                    named.unwrap_or_default(),
                    resolved.project_id
                )));
            }
            (DestinationScope::Project, resolved.project_id.clone())
        }
        // A platform admin without `?projectId=`: the body decides.
        (None, scope) => match (scope, named) {
            (Some(DestinationScope::Project), None) => {
                return Err(ApiError::bad_request(
                    "projectId: a PROJECT destination needs its project",
                ));
            }
            (_, Some(project)) => {
                if app.store.get_project(&project).await?.is_none() {
                    return Err(ApiError::not_found(format!("project {project} not found")));
                }
                (DestinationScope::Project, project)
            }
            (_, None) => (DestinationScope::Platform, "default".into()),
        },
    };
    input.scope = Some(scope);
    Ok(Scope {
        platform_id: "default".into(),
        project_id: project,
    })
}

/// Whether a stored destination lies within the scope the guard resolved for a request that
/// names it in its body (the test send): hidden otherwise, like any foreign record.
fn within(caller: &Caller, record: &DestinationRecord) -> bool {
    match &caller.scope {
        None => caller.principal.is_platform_admin(),
        Some(scope) if caller.principal.is_platform_admin() => {
            record.scope == DestinationScope::Platform || record.project_id == scope.project_id
        }
        Some(scope) => {
            record.scope == DestinationScope::Project && record.project_id == scope.project_id
        }
    }
}

/// A create or patch body, its `events` filter checked against the names events are sent
/// under.
fn input(body: &[u8]) -> ApiResult<DestinationInput> {
    let input: DestinationInput = super::json_body(body)?;
    if let Some(events) = &input.events {
        check_events(events)?;
    }
    Ok(input)
}

/// Whether `name` is an event a destination can receive: one of the engine's audit actions
/// (what the outbox matches on) or a catalog event type (Activepieces' names, which the engine
/// uses for its own actions, and the other sources' types). Spelled exactly: the outbox matches
/// names byte for byte, so a typo or another case here would silently deliver nothing.
fn known_event(name: &str) -> bool {
    name.parse::<crate::store::AuditAction>().is_ok()
        || Catalog::builtin()
            .find_any(name)
            .is_some_and(|(_, event)| event.name == name)
}

/// Refuses an `events` filter naming an event that does not exist: 422, one problem per
/// unknown name at `events[i]`, with close matches where the catalog has some.
fn check_events(events: &[String]) -> ApiResult<()> {
    let mut problems = Vec::new();
    for (index, name) in events.iter().enumerate() {
        if known_event(name) {
            continue;
        }
        let close: Vec<String> = Catalog::builtin()
            .source("activepieces")
            .map(|s| s.close_matches(name))
            .unwrap_or_default()
            .into_iter()
            .chain(
                crate::store::AuditAction::ALL
                    .iter()
                    .map(|a| a.as_str())
                    .filter(|a| {
                        let (a, n) = (a.to_ascii_lowercase(), name.to_ascii_lowercase());
                        n.len() >= 3 && (a.contains(&n) || n.contains(&a))
                    })
                    .map(str::to_string),
            )
            .fold(Vec::new(), |mut all, n| {
                if !all.contains(&n) && all.len() < 5 {
                    all.push(n);
                }
                all
            });
        let hint = if close.is_empty() {
            String::new()
        } else {
            format!(" (did you mean {}?)", close.join(", "))
        };
        problems.push(crate::flow::Problem::new(
            format!("events[{index}]"),
            format!("unknown event {name:?}{hint}: see GET /v1/event-types"),
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let detail = match problems.as_slice() {
        [one] => one.to_string(),
        many => format!(
            "{} unknown events: {}",
            many.len(),
            many.iter()
                .map(|p| p.path.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail);
    error.problems = Some(Box::new(crate::flow::Problems(problems)));
    Err(error)
}

async fn create(
    State(app): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let mut input = input(&body)?;
    let scope = placement(&app, &caller, &mut input).await?;
    let view = app
        .destinations
        .create(&caller.actor(), &scope, input)
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

async fn list(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let data: Vec<Value> = app
        .store
        .list_destinations(caller.visible)
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
        app.metrics.forget_destination(&id);
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

/// `POST /v1/event-destinations/{id}/redeliver`: `eventId` (an audit event's `id`, or the
/// `webhook-id` of a delivery), `createdAfter` / `createdBefore` (RFC 3339; audit events in
/// `[after, before)`), or an empty body (every FAILED delivery again). Events are queued
/// whether they were delivered, failed or never sent (created before the destination), within
/// the destination's `events` filter and scope; at most
/// 10,000 per call (a wider range is a 422).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RedeliverBody {
    event_id: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
}

/// Normalises an optional RFC 3339 bound, naming the field when it is not one.
fn bound(name: &str, value: Option<String>) -> ApiResult<Option<String>> {
    value.map(|v| super::rfc3339(name, &v)).transpose()
}

async fn redeliver(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let request: RedeliverBody = if body.is_empty() {
        RedeliverBody::default()
    } else {
        super::json_body(&body)?
    };
    if app.store.get_destination(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("destination {id} not found")));
    }
    let selection = crate::store::Redelivery {
        event_id: request.event_id,
        created_after: bound("createdAfter", request.created_after)?,
        created_before: bound("createdBefore", request.created_before)?,
    };
    let queued = app
        .store
        .redeliver(&id, &selection)
        .await
        .map_err(|error| match error {
            crate::store::StoreError::Conflict(detail) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
            }
            other => other.into(),
        })?;
    app.destinations.wake();
    Ok(Json(json!({ "queued": queued })))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TestBody {
    destination_id: Option<String>,
    url: Option<String>,
    event: String,
}

/// Sends the catalog's sample of an event, signed like a real delivery, and reports the answer.
async fn test(
    State(app): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let request: TestBody = super::json_body(&body)?;
    let (_, event) = Catalog::builtin().find_any(&request.event).ok_or_else(|| {
        ApiError::bad_request(format!("event: unknown event type {:?}", request.event))
    })?;
    let record = match (request.destination_id, request.url) {
        (Some(id), None) => app
            .store
            .get_destination(&id)
            .await?
            .filter(|record| within(&caller, record))
            .ok_or_else(|| ApiError::not_found(format!("destination {id} not found")))?,
        (None, Some(url)) => {
            let scope = caller.scope.clone().unwrap_or(Scope {
                platform_id: "default".into(),
                project_id: "default".into(),
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filters_name_audit_actions_or_catalog_types() {
        for known in [
            "flow.created",
            "plugin.installed",
            "api.key.revoked",
            "user_created",
        ] {
            assert!(known_event(known), "{known}");
        }
        assert!(check_events(&["flow.created".into(), "secret.upserted".into()]).is_ok());
        let error = check_events(&[
            "flow.created".into(),
            "flow.craeted".into(),
            "FLOW.CREATED".into(),
        ])
        .unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        let problems = error.problems.unwrap();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["events[1]", "events[2]"]);
        assert!(
            problems.0[0].message.contains("did you mean flow.created"),
            "{}",
            problems.0[0].message
        );
        assert!(
            error.detail.contains("events[1], events[2]"),
            "{}",
            error.detail
        );
    }
}
