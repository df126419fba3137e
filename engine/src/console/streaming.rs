//! Event Streaming, as Activepieces' docs describe it: the destinations list (scope, events,
//! enabled, breaker state, last delivery); the New destination form with the events picker,
//! custom headers and content type, **Generate handler flow** and **Test webhook**; a
//! destination's page with its delivery log, redelivery, secret rotation and test sends. The
//! verification token and signing secret are shown once, with copy buttons.

use super::flows::{event_types, events_picker, picked};
use super::html::{self, badge, copyable, csrf_field, enc, esc, field_error, form_errors, t};
use super::{Console, Ctx, Form, Reply, api_error, done};
use crate::store::Role;
use axum::Router;
use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::fmt::Write;

pub fn routes() -> Router<Console> {
    Router::new()
        .route("/event-streaming", get(list))
        .route("/event-streaming/new", post(create))
        .route("/event-streaming/{id}", get(show))
        .route("/event-streaming/{id}/test", post(test_existing))
        .route("/event-streaming/{id}/redeliver", post(redeliver))
        .route("/event-streaming/{id}/rotate", post(rotate))
        .route("/event-streaming/{id}/toggle", post(toggle))
        .route("/event-streaming/{id}/delete", post(delete))
}

/// How many custom header rows the form offers (the API's limit).
const HEADER_ROWS: usize = 20;

fn breaker(d: &Value) -> String {
    if let Some(reason) = d["disabledReason"].as_str() {
        return format!("{} <small>{}</small>", badge("DISABLED"), esc(reason));
    }
    if !d["pausedUntil"].is_null() {
        return format!(
            "{} <small>until {}</small>",
            badge("PAUSED"),
            html::esc(
                &crate::api::rfc3339_ms(d["pausedUntil"].as_i64().unwrap_or_default())
                    .unwrap_or_default()
            )
        );
    }
    if let Some(since) = d["failingSince"].as_str() {
        return format!("failing since {}", esc(since));
    }
    if d["enabled"] == true {
        badge("ENABLED")
    } else {
        badge("DISABLED")
    }
}

async fn list(ctx: Ctx) -> Response {
    render_list(&ctx, &Form(Vec::new()), &[], None).await
}

async fn render_list(
    ctx: &Ctx,
    form: &Form,
    errors: &[(String, String)],
    test_result: Option<&Reply>,
) -> Response {
    let reply = ctx.get("/v1/event-destinations").await;
    let mut body = String::new();
    if reply.ok() {
        let list = reply.body["data"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            body.push_str("<p class=\"empty\">No destinations yet. Add one below: hookflow then streams its audit events there, signed and retried.</p>");
        } else {
            body.push_str("<table data-testid=\"destinations\"><thead><tr><th>Name</th><th>Scope</th><th>URL</th><th>Events</th><th>State</th><th>Last delivery</th></tr></thead><tbody>");
            for d in list.iter().take(100) {
                let last = ctx
                    .get(&format!(
                        "/v1/event-destinations/{}/deliveries",
                        enc(&html::text(&d["id"]))
                    ))
                    .await;
                let last = last.body["data"]
                    .get(0)
                    .map(|a| {
                        format!(
                            "{} {} <small>{}</small>",
                            t(&a["statusCode"]),
                            esc(a["error"].as_str().unwrap_or("")),
                            t(&a["created"])
                        )
                    })
                    .unwrap_or_else(|| "—".into());
                let events = d["events"].as_array().map_or(0, Vec::len);
                let _ = write!(
                    body,
                    "<tr><td><a href=\"/event-streaming/{id}\">{name}</a></td><td>{scope} {project}</td><td><code>{url}</code></td><td>{events}</td><td>{state}</td><td>{last}</td></tr>",
                    id = t(&d["id"]),
                    name = t(&d["name"]),
                    scope = t(&d["scope"]),
                    project = t(&d["projectId"]),
                    url = t(&d["url"]),
                    events = if events == 0 {
                        "all".to_string()
                    } else {
                        events.to_string()
                    },
                    state = breaker(d),
                );
            }
            body.push_str("</tbody></table>");
        }
    } else if reply.status.as_u16() == 403 {
        body.push_str("<p class=\"empty\">Event streaming is configured by platform admins and project admins.</p>");
        return ctx.page("Event Streaming", "event-streaming", &body);
    }
    if let Some(result) = test_result {
        body.push_str(&test_outcome(result));
    }
    if ctx.can(Role::Admin) {
        body.push_str(&new_form(ctx, form, errors).await);
    }
    ctx.page("Event Streaming", "event-streaming", &body)
}

fn test_outcome(reply: &Reply) -> String {
    if !reply.ok() {
        return format!(
            "<p class=\"form-error\" role=\"alert\" data-testid=\"test-result\">Test webhook: {}</p>",
            esc(&reply.detail())
        );
    }
    let r = &reply.body;
    format!(
        "<p class=\"card\" data-testid=\"test-result\">Test webhook: status <b>{}</b> in {:.0} ms {}</p>",
        t(&r["status"]),
        r["durationMs"].as_f64().unwrap_or_default(),
        r["error"]
            .as_str()
            .map(|e| format!("<span class=\"form-error\">{}</span>", esc(e)))
            .unwrap_or_default()
    )
}

async fn new_form(ctx: &Ctx, form: &Form, errors: &[(String, String)]) -> String {
    let mut headers = String::new();
    let names = form.all("header_name");
    let values = form.all("header_value");
    for i in 0..HEADER_ROWS {
        let _ = write!(
            headers,
            "<tr><td><input name=\"header_name\" aria-label=\"Header name {n}\" value=\"{}\"></td><td><input name=\"header_value\" aria-label=\"Header value {n}\" value=\"{}\"></td></tr>",
            esc(names.get(i).map_or("", String::as_str)),
            esc(values.get(i).map_or("", String::as_str)),
            n = i + 1
        );
    }
    let scope = if ctx.can(Role::PlatformAdmin) {
        let platform = if form.get("scope") == "PROJECT" {
            ""
        } else {
            " selected"
        };
        let project = if form.get("scope") == "PROJECT" {
            " selected"
        } else {
            ""
        };
        format!(
            "<label>Scope <select name=\"scope\"><option value=\"PLATFORM\"{platform}>Platform: every event</option><option value=\"PROJECT\"{project}>This project's events only</option></select></label>"
        )
    } else {
        "<input type=\"hidden\" name=\"scope\" value=\"PROJECT\"><p>Scope: this project's events only.</p>".into()
    };
    let content_type = if form.get("content_type") == "application/cloudevents+json" {
        "<option>application/json</option><option selected>application/cloudevents+json</option>"
    } else {
        "<option selected>application/json</option><option>application/cloudevents+json</option>"
    };
    let types = event_types(ctx).await;
    let checked = form.all("event");
    let test_events = new_test_options(&types, &checked, form.get("test_event"));
    format!(
        r#"<h2>New destination</h2><form method="post" action="/event-streaming/new" class="card" data-testid="new-destination">{csrf}{top}
<div class="row"><label>Name <input name="name" value="{name}" aria-describedby="name-error"></label><label>URL (https) <input name="url" type="url" value="{url}" placeholder="https://siem.example.com/hookflow" aria-describedby="url-error"></label></div>{name_error}{url_error}
{scope}<label>Content type <select name="content_type">{content_type}</select></label>
<h3>Events</h3><p><small>None picked: every event.</small></p>{picker}{events_error}
<details><summary>Custom headers (up to {HEADER_ROWS})</summary><table><thead><tr><th>Name</th><th>Value</th></tr></thead><tbody>{headers}</tbody></table></details>{headers_error}
<div class="row"><button type="submit" name="do" value="create">Create destination</button>
<button type="submit" name="do" value="generate" class="secondary">Generate handler flow</button></div>
<div class="row"><label>Test webhook <select name="test_event" data-testid="test-event" data-follows-picker>{test_events}</select></label><button type="submit" name="do" value="test" class="secondary">Test webhook</button></div>
</form>"#,
        csrf = csrf_field(&ctx.csrf),
        top = form_errors(&["name", "url", "events", "headers"], errors),
        name = esc(form.get("name")),
        url = esc(form.get("url")),
        name_error = field_error("name", errors),
        url_error = field_error("url", errors),
        picker = events_picker(&types, &form.all("event")),
        events_error = field_error("events", errors),
        headers_error = field_error("headers", errors),
    )
}

/// The New destination form's Test webhook options (`source|event`): the events picked, or
/// every catalog event while none is (the destination would get them all). `console.js`
/// keeps the list following the checkboxes as they change.
fn new_test_options(types: &[Value], checked: &[String], selected: &str) -> String {
    let mut out = String::new();
    for e in types {
        let value = format!("{}|{}", html::text(&e["source"]), html::text(&e["name"]));
        if !checked.is_empty() && !checked.contains(&value) {
            continue;
        }
        let on = if value == selected { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{}\"{on}>{} · {}</option>",
            esc(&value),
            t(&e["source"]),
            t(&e["name"])
        );
    }
    out
}

/// A destination's Test webhook options: the events it subscribes to that have a sample in
/// the catalog, or every catalog event when it subscribes to everything.
fn destination_test_options(types: &[Value], subscribed: &[Value]) -> String {
    let mut names: Vec<String> = Vec::new();
    for e in types {
        let name = html::text(&e["name"]);
        let wanted = subscribed.is_empty()
            || subscribed
                .iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&name)));
        if wanted && !names.contains(&name) {
            names.push(name);
        }
    }
    names
        .iter()
        .map(|n| format!("<option>{}</option>", esc(n)))
        .collect()
}

/// The destination body of the API from the form.
fn destination_input(form: &Form) -> Value {
    let mut headers = Map::new();
    for (name, value) in form.all("header_name").iter().zip(form.all("header_value")) {
        if !name.trim().is_empty() {
            headers.insert(name.trim().to_string(), Value::String(value));
        }
    }
    let events: Vec<String> = form
        .all("event")
        .iter()
        .map(|v| v.split_once('|').map_or(v.as_str(), |(_, e)| e).to_string())
        .collect();
    json!({
        "name": form.get("name"),
        "url": form.get("url"),
        "events": events,
        "headers": headers,
        "contentType": form.get("content_type"),
        "scope": form.opt("scope").unwrap_or("PROJECT"),
    })
}

async fn create(ctx: Ctx, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    match form.get("do") {
        "generate" => {
            let (source, events) = match picked(&form) {
                Ok(p) => p,
                Err(e) => return render_list(&ctx, &form, &[("events".into(), e)], None).await,
            };
            let path = format!("/v1/handler-flows?{}", ctx.in_project());
            let request = json!({"source": source, "events": events});
            let reply = ctx.send(Method::POST, &path, &form, &request).await;
            if !reply.ok() {
                return render_list(&ctx, &form, &reply.errors(), None).await;
            }
            super::flows::generated_page(&ctx, reply.body).await
        }
        "test" => {
            let event = form
                .get("test_event")
                .split_once('|')
                .map_or(form.get("test_event"), |(_, e)| e);
            let request = json!({"url": form.get("url"), "event": event});
            let path = format!("/v1/event-destinations/test?{}", ctx.in_project());
            let reply = ctx.send(Method::POST, &path, &form, &request).await;
            let errors = if reply.ok() {
                Vec::new()
            } else {
                reply.errors()
            };
            render_list(&ctx, &form, &errors, Some(&reply)).await
        }
        _ => {
            let input = destination_input(&form);
            let path = if input["scope"] == "PLATFORM" {
                "/v1/event-destinations".to_string()
            } else {
                format!("/v1/event-destinations?{}", ctx.in_project())
            };
            let reply = ctx.send(Method::POST, &path, &form, &input).await;
            if !reply.ok() {
                return render_list(&ctx, &form, &reply.errors(), None).await;
            }
            // Shown once: the page answering the creation is the only one with the secrets.
            destination_page(
                &ctx,
                &html::text(&reply.body["id"]),
                Some(&reply.body),
                None,
            )
            .await
        }
    }
}

async fn show(ctx: Ctx, Path(id): Path<String>) -> Response {
    destination_page(&ctx, &id, None, None).await
}

async fn destination_page(
    ctx: &Ctx,
    id: &str,
    secrets: Option<&Value>,
    test_result: Option<&Reply>,
) -> Response {
    let reply = ctx
        .get(&format!("/v1/event-destinations/{}", enc(id)))
        .await;
    if !reply.ok() {
        return api_error(ctx, "event-streaming", &reply);
    }
    let d = reply.body;
    let events = d["events"]
        .as_array()
        .filter(|e| !e.is_empty())
        .map(|e| e.iter().map(t).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "every event".into());
    let mut body = format!(
        "<table data-destination=\"{}\"><tbody><tr><th>URL</th><td><code>{}</code></td></tr><tr><th>Scope</th><td>{} {}</td></tr><tr><th>Events</th><td>{}</td></tr><tr><th>Content type</th><td>{}</td></tr><tr><th>State</th><td>{}</td></tr><tr><th>Verification header</th><td><code>{}</code></td></tr></tbody></table>",
        esc(id),
        t(&d["url"]),
        t(&d["scope"]),
        t(&d["projectId"]),
        events,
        t(&d["contentType"]),
        breaker(&d),
        t(&d["verificationTokenHeader"]),
    );
    if let Some(s) = secrets {
        body.push_str("<div class=\"card\" data-testid=\"secrets\"><p><b>Copy these now: they are not shown again.</b></p>");
        if let Some(token) = s["verificationToken"].as_str() {
            body.push_str(&copyable("Verification token", token, "verification-token"));
        }
        if let Some(secret) = s["signingSecret"].as_str() {
            body.push_str(&copyable("Signing secret", secret, "signing-secret"));
        }
        body.push_str("</div>");
    }
    if let Some(result) = test_result {
        body.push_str(&test_outcome(result));
    }
    let subscribed = d["events"].as_array().cloned().unwrap_or_default();
    let options = destination_test_options(&event_types(ctx).await, &subscribed);
    if options.is_empty() {
        body.push_str("<p class=\"card\" data-testid=\"test-event\">Test webhook: none of this destination's events has a sample to send.</p>");
    } else {
        let _ = write!(
            body,
            r#"<form method="post" action="/event-streaming/{id}/test" class="card row">{csrf}<label>Test webhook <select name="event" data-testid="test-event">{options}</select></label><button type="submit">Send test event</button></form>"#,
            id = esc(id),
            csrf = csrf_field(&ctx.csrf),
        );
    }
    body.push_str("<p>");
    body.push_str(&html::button_form(
        &format!("/event-streaming/{id}/rotate"),
        "Rotate signing secret",
        &ctx.csrf,
        Some("Rotate the signing secret? The old one keeps signing for 24 hours."),
    ));
    let toggle = if d["enabled"] == true {
        "Disable"
    } else {
        "Enable"
    };
    body.push(' ');
    body.push_str(&html::button_form(
        &format!("/event-streaming/{id}/toggle"),
        toggle,
        &ctx.csrf,
        None,
    ));
    body.push(' ');
    body.push_str(&html::button_form(
        &format!("/event-streaming/{id}/delete"),
        "Delete destination",
        &ctx.csrf,
        Some("Delete this destination? Pending deliveries are dropped."),
    ));
    body.push_str("</p><h2>Delivery log</h2>");
    let log = ctx
        .get(&format!("/v1/event-destinations/{}/deliveries", enc(id)))
        .await;
    let attempts = log.body["data"].as_array().cloned().unwrap_or_default();
    if attempts.is_empty() {
        body.push_str("<p class=\"empty\">No delivery attempts yet.</p>");
    } else {
        body.push_str("<table data-testid=\"deliveries\"><thead><tr><th>Event</th><th>Attempt</th><th>Status</th><th>Duration</th><th>Error</th><th>At</th><th></th></tr></thead><tbody>");
        for a in &attempts {
            let redeliver = html::button_form(
                &format!(
                    "/event-streaming/{}/redeliver?eventId={}",
                    esc(id),
                    enc(&html::text(&a["eventId"]))
                ),
                "Redeliver",
                &ctx.csrf,
                None,
            );
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{:.0} ms</td><td>{}</td><td>{}</td><td>{redeliver}</td></tr>",
                t(&a["eventId"]),
                t(&a["attempt"]),
                t(&a["statusCode"]),
                a["durationMs"].as_f64().unwrap_or_default(),
                t(&a["error"]),
                t(&a["created"]),
            );
        }
        body.push_str("</tbody></table>");
        body.push_str(&html::button_form(
            &format!("/event-streaming/{id}/redeliver"),
            "Redeliver every failed event",
            &ctx.csrf,
            Some("Queue every failed delivery of this destination again?"),
        ));
    }
    let title = d["name"].as_str().unwrap_or("Destination").to_string();
    ctx.page(&title, "event-streaming", &body)
}

async fn test_existing(ctx: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let request = json!({"destinationId": id, "event": form.get("event")});
    // The test route resolves the destination's own scope: pass its project when it has one.
    let path = match ctx
        .get(&format!("/v1/event-destinations/{}", enc(&id)))
        .await
    {
        r if r.body["scope"] == "PROJECT" => format!(
            "/v1/event-destinations/test?projectId={}",
            enc(&html::text(&r.body["projectId"]))
        ),
        _ => "/v1/event-destinations/test".to_string(),
    };
    let reply = ctx.send(Method::POST, &path, &form, &request).await;
    destination_page(&ctx, &id, None, Some(&reply)).await
}

async fn redeliver(ctx: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let request = match ctx.param("eventId") {
        Some(event) => json!({"eventId": event}),
        None => json!({}),
    };
    let reply = ctx
        .send(
            Method::POST,
            &format!("/v1/event-destinations/{}/redeliver", enc(&id)),
            &form,
            &request,
        )
        .await;
    if !reply.ok() {
        return api_error(&ctx, "event-streaming", &reply);
    }
    done(
        &format!("/event-streaming/{}", enc(&id)),
        &format!("{} deliveries queued again", t(&reply.body["queued"])),
    )
}

async fn rotate(ctx: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let reply = ctx
        .send(
            Method::POST,
            &format!("/v1/event-destinations/{}/rotate-secret", enc(&id)),
            &form,
            &json!({}),
        )
        .await;
    if !reply.ok() {
        return api_error(&ctx, "event-streaming", &reply);
    }
    destination_page(&ctx, &id, Some(&reply.body), None).await
}

async fn toggle(ctx: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let current = ctx
        .get(&format!("/v1/event-destinations/{}", enc(&id)))
        .await;
    if !current.ok() {
        return api_error(&ctx, "event-streaming", &current);
    }
    let enabled = current.body["enabled"] != true;
    let reply = ctx
        .send(
            Method::PATCH,
            &format!("/v1/event-destinations/{}", enc(&id)),
            &form,
            &json!({"enabled": enabled}),
        )
        .await;
    if !reply.ok() {
        return api_error(&ctx, "event-streaming", &reply);
    }
    done(
        &format!("/event-streaming/{}", enc(&id)),
        if enabled { "Enabled" } else { "Disabled" },
    )
}

async fn delete(ctx: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let reply = ctx
        .api(
            Method::DELETE,
            &format!("/v1/event-destinations/{}", enc(&id)),
            Some(form.get("csrf")),
            None,
        )
        .await;
    if !reply.ok() {
        return api_error(&ctx, "event-streaming", &reply);
    }
    done("/event-streaming", "Destination deleted")
}
