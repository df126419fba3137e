//! The audit log: filters (action, project, user, time range), human summaries, CSV/JSONL
//! export of the same selection, and the hash chain's verification on request.

use super::html::{enc, esc, t};
use super::{Console, Ctx};
use crate::store::Role;
use axum::Router;
use axum::response::Response;
use axum::routing::get;
use std::fmt::Write;

pub fn routes() -> Router<Console> {
    Router::new().route("/audit", get(list))
}

async fn list(ctx: Ctx) -> Response {
    let mut query = String::from("limit=100");
    let mut filters = String::new();
    for (param, api) in [
        ("action", "action"),
        ("projectId", "projectId"),
        ("userId", "userId"),
        ("after", "createdAfter"),
        ("before", "createdBefore"),
    ] {
        if let Some(value) = ctx.param(param) {
            let value = match api {
                "createdAfter" | "createdBefore" => super::html::utc_of_local(value),
                _ => value.to_string(),
            };
            let _ = write!(filters, "&{api}={}", enc(&value));
        }
    }
    query.push_str(&filters);
    if let Some(cursor) = ctx.param("cursor") {
        let _ = write!(query, "&cursor={}", enc(cursor));
    }
    let field = |name: &str, label: &str, kind: &str| {
        format!(
            "<label>{label} <input name=\"{name}\" type=\"{kind}\" value=\"{}\"></label>",
            esc(ctx.param(name).unwrap_or(""))
        )
    };
    let mut body = format!(
        "<form method=\"get\" action=\"/audit\" class=\"card row\" data-testid=\"audit-filters\">{}{}{}{}{}<button>Filter</button></form>",
        field("action", "Action", "text"),
        field("projectId", "Project", "text"),
        field("userId", "User", "text"),
        field("after", "From (UTC)", "datetime-local"),
        field("before", "To (UTC)", "datetime-local"),
    );
    let page = ctx.get(&format!("/v1/audit-events?{query}")).await;
    if !page.ok() {
        let _ = write!(
            body,
            "<p class=\"form-error\" role=\"alert\">{}</p>",
            esc(&page.detail())
        );
        return ctx.page("Audit log", "audit", &body);
    }
    let _ = write!(
        body,
        "<p>Export this selection: <a href=\"/v1/audit-events/export?format=csv{f}\" download>CSV</a> · <a href=\"/v1/audit-events/export?format=jsonl{f}\" download>JSONL</a></p>",
        f = esc(&filters)
    );
    // Whoever reads the log may verify it (auditors, platform and project admins).
    if ctx.can(Role::Auditor) {
        if ctx.param("verify").is_some() {
            let verdict = ctx.get("/v1/audit-events/verify").await;
            let text = if !verdict.ok() {
                format!("The chain could not be verified: {}", verdict.detail())
            } else if verdict.body["intact"] == true {
                match verdict.body["events"].as_u64() {
                    Some(events) => {
                        format!("The hash chain is intact: {events} events verified.")
                    }
                    None => "The hash chain is intact.".to_string(),
                }
            } else if verdict.body["brokenAt"].is_null() {
                "The hash chain is broken; a platform admin or an auditor sees where.".to_string()
            } else {
                format!(
                    "The chain is broken at event {} (seq {}): {}",
                    t(&verdict.body["brokenAt"]["id"]),
                    t(&verdict.body["brokenAt"]["seq"]),
                    t(&verdict.body["brokenAt"]["reason"])
                )
            };
            let _ = write!(
                body,
                "<p class=\"card\" data-testid=\"chain\">{}</p>",
                esc(&text)
            );
        } else {
            body.push_str("<p><a href=\"/audit?verify=1\">Verify the hash chain</a></p>");
        }
    }
    let events = page.body["data"].as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        body.push_str("<p class=\"empty\">No audit events match.</p>");
    } else {
        body.push_str("<table data-testid=\"audit-events\"><thead><tr><th>When</th><th>Action</th><th>Summary</th><th>Who</th><th>IP</th><th>Project</th></tr></thead><tbody>");
        for e in &events {
            let _ = write!(
                body,
                "<tr data-action=\"{a}\"><td>{}</td><td><code>{a}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                t(&e["created"]),
                t(&e["summary"]),
                esc(e["userEmail"]
                    .as_str()
                    .or(e["userId"].as_str())
                    .unwrap_or("system")),
                t(&e["ip"]),
                t(&e["projectId"]),
                a = t(&e["action"]),
            );
        }
        body.push_str("</tbody></table>");
        if let Some(next) = page.body["next"].as_str() {
            let _ = write!(
                body,
                "<p class=\"pager\"><a href=\"/audit?cursor={}{}\">older →</a></p>",
                enc(next),
                esc(&filters
                    .replace("createdAfter", "after")
                    .replace("createdBefore", "before"))
            );
        }
    }
    ctx.page("Audit log", "audit", &body)
}
