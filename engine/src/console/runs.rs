//! Runs: the list with filters (flow, status, time range) and cursor paging, and a run's page
//! with its trace and a retry from the failed step.

use super::html::{self, badge, enc, esc, t};
use super::{Console, Ctx, Form, api_error, done, trace};
use crate::store::{Role, RunStatus};
use axum::Router;
use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use std::fmt::Write;

pub fn routes() -> Router<Console> {
    Router::new()
        .route("/runs", get(list))
        .route("/runs/{id}", get(show))
        .route("/runs/{id}/retry", post(retry))
}

async fn list(ctx: Ctx) -> Response {
    let mut query = format!("{}&limit=50", ctx.in_project());
    let mut keep = String::new();
    for (param, api) in [
        ("flowId", "flowId"),
        ("status", "status"),
        ("after", "createdAfter"),
        ("before", "createdBefore"),
    ] {
        if let Some(value) = ctx.param(param) {
            let value = if api.starts_with("created") {
                html::utc_of_local(value)
            } else {
                value.to_string()
            };
            let _ = write!(query, "&{api}={}", enc(&value));
            let _ = write!(keep, "&{param}={}", enc(ctx.param(param).unwrap_or("")));
        }
    }
    if let Some(cursor) = ctx.param("cursor") {
        let _ = write!(query, "&cursor={}", enc(cursor));
    }
    let page = ctx.get(&format!("/v1/flow-runs?{query}")).await;
    let flows = ctx
        .get(&format!("/v1/flows?{}&limit=500", ctx.in_project()))
        .await;
    let mut flow_options = String::from("<option value=\"\">any flow</option>");
    for f in flows.body["data"].as_array().into_iter().flatten() {
        let selected = if ctx.param("flowId") == f["id"].as_str() {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            flow_options,
            "<option value=\"{}\"{selected}>{}</option>",
            t(&f["id"]),
            t(&f["name"])
        );
    }
    let mut status_options = String::from("<option value=\"\">any status</option>");
    for s in RunStatus::ALL {
        let selected = if ctx.param("status") == Some(s.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(status_options, "<option{selected}>{s}</option>");
    }
    let mut body = format!(
        r#"<form method="get" action="/runs" class="card row" data-testid="run-filters"><label>Flow <select name="flowId">{flow_options}</select></label><label>Status <select name="status">{status_options}</select></label><label>From (UTC) <input type="datetime-local" name="after" value="{after}"></label><label>To (UTC) <input type="datetime-local" name="before" value="{before}"></label><button>Filter</button></form>"#,
        after = esc(ctx.param("after").unwrap_or("")),
        before = esc(ctx.param("before").unwrap_or("")),
    );
    if !page.ok() {
        let _ = write!(
            body,
            "<p class=\"form-error\" role=\"alert\">{}</p>",
            esc(&page.detail())
        );
        return ctx.page("Runs", "runs", &body);
    }
    let runs = page.body["data"].as_array().cloned().unwrap_or_default();
    if runs.is_empty() {
        body.push_str("<p class=\"empty\">No runs match. Runs appear here when a flow's webhook receives an event, or after a test run.</p>");
    } else {
        body.push_str("<table data-testid=\"runs\"><thead><tr><th>Run</th><th>Status</th><th>Flow</th><th>Environment</th><th>Created</th><th>Duration</th></tr></thead><tbody>");
        for r in &runs {
            let _ = write!(
                body,
                "<tr><td><a href=\"/runs/{id}\"><code>{id}</code></a></td><td>{status}</td><td><a href=\"/flows/{flow}\">{flow}</a> v{v}</td><td>{env}</td><td>{created}</td><td>{ms}</td></tr>",
                id = t(&r["id"]),
                status = badge(r["status"].as_str().unwrap_or("?")),
                flow = t(&r["flowId"]),
                v = t(&r["flowVersion"]),
                env = t(&r["environment"]),
                created = t(&r["created"]),
                ms = r["durationMs"]
                    .as_f64()
                    .map_or(String::new(), |d| format!("{d:.0} ms")),
            );
        }
        body.push_str("</tbody></table><p class=\"pager\">");
        if let Some(previous) = page.body["previous"].as_str() {
            let _ = write!(
                body,
                "<a href=\"/runs?cursor={}{keep}\">← newer</a>",
                enc(previous)
            );
        }
        if let Some(next) = page.body["next"].as_str() {
            let _ = write!(
                body,
                "<a href=\"/runs?cursor={}{keep}\">older →</a>",
                enc(next)
            );
        }
        body.push_str("</p>");
    }
    ctx.page("Runs", "runs", &body)
}

async fn show(ctx: Ctx, Path(id): Path<String>) -> Response {
    let reply = ctx.get(&format!("/v1/flow-runs/{}", enc(&id))).await;
    if !reply.ok() {
        return api_error(&ctx, "runs", &reply);
    }
    let run = reply.body;
    let mut body = format!(
        "<p>Flow <a href=\"/flows/{f}\">{f}</a> version {v} · created {c}</p>",
        f = t(&run["flowId"]),
        v = t(&run["flowVersion"]),
        c = t(&run["created"])
    );
    let retryable = matches!(run["status"].as_str(), Some("FAILED" | "TIMEOUT"));
    if retryable && ctx.can(Role::Operator) {
        body.push_str(&html::button_form(
            &format!("/runs/{}/retry", esc(&id)),
            "Retry from the failed step",
            &ctx.csrf,
            None,
        ));
    }
    body.push_str(&trace::render(&run));
    ctx.page("Run", "runs", &body)
}

async fn retry(ctx: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let reply = ctx
        .api(
            Method::POST,
            &format!("/v1/flow-runs/{}/retry", enc(&id)),
            Some(form.get("csrf")),
            None,
        )
        .await;
    if !reply.ok() {
        return api_error(&ctx, "runs", &reply);
    }
    done(&format!("/runs/{}", enc(&id)), "Run queued again")
}
