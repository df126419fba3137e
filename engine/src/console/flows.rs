//! Flows: the list with the handler-flow generator, a flow's page (graph, YAML editor with
//! errors next to their lines, test run with its trace, version history with a diff).

use super::html::{self, csrf_field, enc, esc, field_error, form_errors, t};
use super::{Console, Ctx, Form, api_error, done, graph, trace};
use crate::store::Role;
use axum::Router;
use axum::extract::Path;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::fmt::Write;

pub fn routes() -> Router<Console> {
    Router::new()
        .route("/flows", get(list))
        .route("/flows/generate", post(generate))
        .route("/flows/new", post(create))
        .route("/flows/{id}", get(show))
        .route("/flows/{id}/save", post(save))
        .route("/flows/{id}/test", post(test))
        .route("/flows/{id}/delete", post(delete))
        .route("/flows/{id}/lifecycle/{action}", post(lifecycle))
        .route("/flows/{id}/diff", get(diff))
}

/// The catalog's event types (`GET /v1/event-types`), asked once per page.
pub async fn event_types(ctx: &Ctx) -> Vec<Value> {
    ctx.get("/v1/event-types").await.body["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The events picker: every catalog event as a checkbox `source|event`, grouped by source,
/// with a search box.
pub fn events_picker(types: &[Value], checked: &[String]) -> String {
    let mut by_source: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for e in types {
        let source = html::text(&e["source"]);
        let entry = (html::text(&e["name"]), html::text(&e["description"]));
        match by_source.iter_mut().find(|(s, _)| *s == source) {
            Some((_, list)) => list.push(entry),
            None => by_source.push((source, vec![entry])),
        }
    }
    let mut out = String::from(
        "<label>Search events <input type=\"search\" data-filter=\"#picker\" placeholder=\"flow.run, user., push…\"></label><div class=\"picker\" id=\"picker\">",
    );
    for (source, events) in by_source {
        let _ = write!(out, "<fieldset><legend>{}</legend>", esc(&source));
        for (name, description) in events {
            let value = format!("{source}|{name}");
            let on = if checked.contains(&value) || checked.contains(&name) {
                " checked"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<label title=\"{d}\"><input type=\"checkbox\" name=\"event\" value=\"{v}\"{on}>{n} <small>{d}</small></label>",
                v = esc(&value),
                n = esc(&name),
                d = esc(&description)
            );
        }
        out.push_str("</fieldset>");
    }
    out.push_str("</div>");
    out
}

/// Splits picked `source|event` values into one source and its events.
pub fn picked(form: &Form) -> Result<(String, Vec<String>), String> {
    let mut source = None;
    let mut events = Vec::new();
    for value in form.all("event") {
        let (s, e) = value.split_once('|').unwrap_or(("activepieces", &value));
        match &source {
            None => source = Some(s.to_string()),
            Some(known) if known != s => {
                return Err("pick the events of one source (one handler flow per source)".into());
            }
            Some(_) => {}
        }
        events.push(e.to_string());
    }
    match source {
        Some(source) => Ok((source, events)),
        None => Err("pick at least one event".into()),
    }
}

async fn list(ctx: Ctx) -> Response {
    render_list(&ctx, &[], &[], "", &[]).await
}

/// The flows list with the generator (`errors`: of its form) and the new-flow form (`yaml` as
/// typed and `yaml_problems`: the API's validation errors by path, shown with their lines).
async fn render_list(
    ctx: &Ctx,
    errors: &[(String, String)],
    yaml_problems: &[(String, String)],
    yaml: &str,
    checked: &[String],
) -> Response {
    let mut path = format!("/v1/flows?{}&limit=50", ctx.in_project());
    if let Some(cursor) = ctx.param("cursor") {
        let _ = write!(path, "&cursor={}", enc(cursor));
    }
    let page = ctx.get(&path).await;
    if !page.ok() {
        return api_error(ctx, "flows", &page);
    }
    let mut body = String::new();
    let flows = page.body["data"].as_array().cloned().unwrap_or_default();
    if flows.is_empty() {
        body.push_str("<p class=\"empty\">No flows in this project yet. Generate a handler flow for the events you care about below, or paste a flow's YAML.</p>");
    } else {
        body.push_str("<table data-testid=\"flows\"><thead><tr><th>Name</th><th>Version</th><th>Updated</th><th>Webhook</th></tr></thead><tbody>");
        for f in &flows {
            let _ = write!(
                body,
                "<tr><td><a href=\"/flows/{id}\">{name}</a></td><td>{v}</td><td>{u}</td><td><code>/v1/webhooks/{id}</code></td></tr>",
                id = t(&f["id"]),
                name = t(&f["name"]),
                v = t(&f["version"]),
                u = t(&f["updated"]),
            );
        }
        body.push_str("</tbody></table>");
        if let Some(next) = page.body["next"].as_str() {
            let _ = write!(
                body,
                "<p class=\"pager\"><a href=\"/flows?cursor={}\">Older flows →</a></p>",
                enc(next)
            );
        }
    }
    if ctx.can(Role::Editor) {
        let _ = write!(
            body,
            r#"<h2>Generate a handler flow</h2><form method="post" action="/flows/generate" class="card" data-testid="generate">{csrf}{top}{picker}{err}<label>Name <input name="name" placeholder="optional"></label><button type="submit">Generate handler flow</button></form>
<h2>New flow from YAML</h2><form method="post" action="/flows/new" class="card" data-testid="new-flow">{csrf}{yaml_errors}<label>Flow <textarea name="yaml" spellcheck="false" aria-describedby="yaml-error">{yaml}</textarea></label><button type="submit">Create flow</button></form>"#,
            csrf = csrf_field(&ctx.csrf),
            top = form_errors(&["events", "name"], errors),
            picker = events_picker(&event_types(ctx).await, checked),
            err = field_error("events", errors),
            yaml_errors = yaml_errors(yaml, yaml_problems),
            yaml = esc(yaml),
        );
    }
    ctx.page("Flows", "flows", &body)
}

async fn generate(ctx: Ctx, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let checked = form.all("event");
    let (source, events) = match picked(&form) {
        Ok(p) => p,
        Err(e) => return render_list(&ctx, &[("events".into(), e)], &[], "", &checked).await,
    };
    let mut request = json!({"source": source, "events": events});
    if let Some(name) = form.opt("name") {
        request["name"] = json!(name);
    }
    let path = format!("/v1/handler-flows?{}", ctx.in_project());
    let reply = ctx.send(Method::POST, &path, &form, &request).await;
    if !reply.ok() {
        return render_list(&ctx, &reply.errors(), &[], "", &checked).await;
    }
    generated_page(&ctx, reply.body).await
}

/// The page after a handler flow is generated: the flow's own page with its webhook credential
/// on top. The API returns the credential once and masks it ever after, so this page — not a
/// redirect that would lose it — is the one place a console user can copy it.
pub async fn generated_page(ctx: &Ctx, created: Value) -> Response {
    let id = t(&created["id"]);
    let extras = Extras {
        generated: Some(created),
        ..Extras::default()
    };
    flow_page(ctx, &id, extras).await
}

/// The card showing a generated flow's webhook credential and how to call the webhook with it.
fn credential_card(created: &Value) -> String {
    let url = t(&created["webhookUrl"]);
    let id = esc(&t(&created["id"]));
    let auth = &created["credential"];
    let (fields, header) = match auth["type"].as_str() {
        Some("header") => {
            let name = t(&auth["header"]);
            let value = t(&auth["value"]);
            (
                html::copyable("Header", &name, "webhook-credential-header")
                    + &html::copyable("Value", &value, "webhook-credential"),
                format!("-H '{name}: {value}'"),
            )
        }
        Some("bearer") => {
            let token = t(&auth["token"]);
            (
                html::copyable("Bearer token", &token, "webhook-credential"),
                format!("-H 'Authorization: Bearer {token}'"),
            )
        }
        Some("standardWebhooks") => (
            html::copyable(
                "Standard Webhooks signing secret",
                &t(&auth["secret"]),
                "webhook-credential",
            ),
            String::new(),
        ),
        _ => {
            return format!(
                "<div class=\"card\" data-testid=\"webhook-credential-card\" data-flow=\"{id}\"><p><b>This webhook takes events without a credential.</b> Anyone who knows its address can start runs: add <code>trigger.auth</code> below unless that is what you want.</p>{}</div>",
                html::copyable("Webhook URL", &url, "webhook-url")
            );
        }
    };
    let example = if header.is_empty() {
        "Senders sign each event with this secret (<code>webhook-id</code>, <code>webhook-timestamp</code>, <code>webhook-signature</code> headers), as Standard Webhooks libraries do.".to_string()
    } else {
        format!(
            "<pre class=\"listing\">curl -X POST {} \\\n  -H 'Content-Type: application/json' {} \\\n  -d '{{\"action\": \"flow.run.finished\"}}'</pre>",
            esc(&url),
            esc(&header)
        )
    };
    format!(
        "<div class=\"card\" data-testid=\"webhook-credential-card\" data-flow=\"{id}\"><p><b>Copy the webhook credential now: it is not shown again.</b> The flow is live; events without it are refused.</p>{}{fields}{example}</div>",
        html::copyable("Webhook URL", &url, "webhook-url")
    )
}

async fn create(ctx: Ctx, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let yaml = form.get("yaml").to_string();
    let path = format!("/v1/flows?{}", ctx.in_project());
    let reply = ctx
        .api(
            Method::POST,
            &path,
            Some(form.get("csrf")),
            Some(("application/yaml", yaml.clone().into_bytes())),
        )
        .await;
    if !reply.ok() {
        // The same display as the flow page's editor: each error with the line it names.
        return render_list(&ctx, &[], &reply.errors(), &yaml, &[]).await;
    }
    done(&format!("/flows/{}", t(&reply.body["id"])), "Flow created")
}

/// What a flow page shows besides the flow itself.
#[derive(Default)]
struct Extras {
    /// YAML the editor shows instead of the stored version (after a failed save).
    yaml: Option<String>,
    errors: Vec<(String, String)>,
    /// The trace of a test run just made.
    trace: Option<Value>,
    /// A handler flow just generated: the API's answer, whose `credential` is shown this once.
    generated: Option<Value>,
}

async fn show(ctx: Ctx, Path(id): Path<String>) -> Response {
    flow_page(&ctx, &id, Extras::default()).await
}

/// The 1-based line a validation path (`steps[1].branches[0].steps[2].input.message`) names
/// in `yaml`: each key is looked for below the line of the one before it.
pub fn line_of(yaml: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut at = 0usize;
    let mut found = None;
    for segment in path.split('.') {
        let (key, indexes) = match segment.split_once('[') {
            Some((k, rest)) => (
                k,
                rest.trim_end_matches(']').split("][").collect::<Vec<_>>(),
            ),
            None => (segment, Vec::new()),
        };
        if !key.is_empty() {
            let hit = (at..lines.len()).find(|&i| {
                let l = lines[i].trim_start().trim_start_matches("- ");
                l.starts_with(&format!("{key}:"))
            })?;
            at = hit;
            found = Some(hit);
        }
        for index in indexes {
            let n: usize = index.parse().ok()?;
            let indent = lines.get(at + 1).map(|l| l.len() - l.trim_start().len())?;
            let items: Vec<usize> = (at + 1..lines.len())
                .take_while(|&i| {
                    lines[i].trim().is_empty()
                        || lines[i].len() - lines[i].trim_start().len() >= indent
                })
                .filter(|&i| {
                    lines[i].len() - lines[i].trim_start().len() == indent
                        && lines[i].trim_start().starts_with("- ")
                })
                .collect();
            at = *items.get(n)?;
            found = Some(at);
        }
    }
    found.map(|i| i + 1)
}

async fn flow_page(ctx: &Ctx, id: &str, extras: Extras) -> Response {
    let reply = ctx.get(&format!("/v1/flows/{}", enc(id))).await;
    if !reply.ok() {
        return api_error(ctx, "flows", &reply);
    }
    let flow = reply.body;
    let definition = &flow["definition"];
    // With a draft pending, the editor holds the draft: that is what the next save builds on.
    let draft = flow["draftVersion"].as_i64();
    let mut editing = definition.clone();
    if let Some(n) = draft {
        let reply = ctx
            .get(&format!("/v1/flows/{}/versions/{n}", enc(id)))
            .await;
        if reply.ok() {
            editing = reply.body["definition"].clone();
        }
    }
    let stored_yaml = crate::yaml::to_string(&editing).unwrap_or_default();
    let yaml = extras.yaml.clone().unwrap_or(stored_yaml);
    let state = if flow["enabled"] == false {
        "<span class=\"badge badge-disabled\" data-testid=\"flow-state\">DISABLED</span>"
    } else {
        "<span class=\"badge badge-enabled\" data-testid=\"flow-state\">ENABLED</span>"
    };
    let pending = draft
        .map(|n| format!(" · draft version {n} not published"))
        .unwrap_or_default();
    let mut body = format!(
        "<p>{state} Published version {}{pending} · updated {} · webhook <code>POST {}</code></p>",
        t(&flow["version"]),
        t(&flow["updated"]),
        t(&flow["webhookUrl"])
    );
    if ctx.can(Role::Editor) {
        body.push_str("<p data-testid=\"lifecycle\">");
        if draft.is_some() {
            body.push_str(&html::button_form(
                &format!("/flows/{id}/lifecycle/publish"),
                "Publish draft",
                &ctx.csrf,
                None,
            ));
        }
        let (action, label) = if flow["enabled"] == false {
            ("enable", "Enable flow")
        } else {
            ("disable", "Disable flow")
        };
        body.push_str(&html::button_form(
            &format!("/flows/{id}/lifecycle/{action}"),
            label,
            &ctx.csrf,
            None,
        ));
        body.push_str("</p>");
    }
    if let Some(created) = &extras.generated {
        body.push_str(&credential_card(created));
    }
    if let Some(description) = definition["description"].as_str() {
        let _ = write!(body, "<p>{}</p>", esc(description));
    }
    body.push_str("<h2>Graph</h2>");
    body.push_str(&graph::render(definition));

    // Test run.
    if ctx.can(Role::Operator) {
        let mut samples: Vec<String> = definition["sampleData"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if samples.is_empty() {
            samples = event_types(ctx)
                .await
                .iter()
                .map(|e| html::text(&e["name"]))
                .collect();
        }
        let options: String = samples
            .iter()
            .map(|s| format!("<option value=\"{0}\">{0}</option>", esc(s)))
            .collect();
        let _ = write!(
            body,
            r#"<h2>Test run</h2><form method="post" action="/flows/{id}/test" class="card" data-testid="test-run">{csrf}<div class="row"><label>Sample event <select name="event"><option value="">— paste a payload instead —</option>{options}</select></label>
<label><input type="checkbox" name="live" value="1"> Run side effects too (live)</label></div><label>Payload (JSON) <textarea name="payload" rows="6" class="short" placeholder='{{"action": "flow.run.finished", ...}}'>{payload}</textarea></label>{perr}<button type="submit">Run test</button></form>"#,
            id = esc(id),
            csrf = csrf_field(&ctx.csrf),
            payload = esc(extras
                .errors
                .iter()
                .find(|(f, _)| f == "payload-text")
                .map_or("", |(_, v)| v)),
            perr = field_error("event", &extras.errors),
        );
    }
    if let Some(run) = &extras.trace {
        body.push_str("<h2>Test result</h2>");
        body.push_str(&trace::render(run));
    }

    // Editor.
    if ctx.can(Role::Editor) {
        let marked = yaml_errors(&yaml, &extras.errors);
        let _ = write!(
            body,
            r#"<h2>Edit</h2><form method="post" action="/flows/{id}/save" class="card" data-testid="editor">{csrf}{marked}<label>YAML <textarea name="yaml" spellcheck="false" aria-describedby="yaml-error">{yaml}</textarea></label><button type="submit">Save new version</button> <button type="submit" name="draft" value="1">Save as draft</button></form>"#,
            id = esc(id),
            csrf = csrf_field(&ctx.csrf),
            yaml = esc(&yaml),
        );
    }

    // History.
    let versions = ctx.get(&format!("/v1/flows/{}/versions", enc(id))).await;
    let list = versions.body["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    body.push_str("<h2>Versions</h2><table><thead><tr><th>Version</th><th>Saved</th><th></th></tr></thead><tbody>");
    for (i, v) in list.iter().enumerate() {
        let diff = list
            .get(i + 1)
            .map(|older| {
                format!(
                    "<a href=\"/flows/{}/diff?from={}&to={}\">diff with {}</a>",
                    esc(id),
                    t(&older["version"]),
                    t(&v["version"]),
                    t(&older["version"])
                )
            })
            .unwrap_or_default();
        let mark = if v["published"] == true {
            " (published)"
        } else if v["draft"] == true {
            " (draft)"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<tr><td>{}{mark}</td><td>{}</td><td>{diff}</td></tr>",
            t(&v["version"]),
            t(&v["created"])
        );
    }
    body.push_str("</tbody></table>");
    if ctx.can(Role::Editor) {
        body.push_str("<h2>Danger zone</h2>");
        body.push_str(&html::button_form(
            &format!("/flows/{id}/delete"),
            "Delete flow",
            &ctx.csrf,
            Some("Delete this flow? Its runs stay visible."),
        ));
    }
    let title = flow["name"].as_str().unwrap_or("Flow").to_string();
    ctx.page(&title, "flows", &body)
}

/// Validation errors with the line each names, and the submitted YAML listed with those lines
/// marked.
fn yaml_errors(yaml: &str, errors: &[(String, String)]) -> String {
    let errors: Vec<&(String, String)> = errors
        .iter()
        .filter(|(f, _)| f != "payload-text" && f != "event")
        .collect();
    if errors.is_empty() {
        return String::new();
    }
    let mut lines = Vec::new();
    let mut out = String::from(
        "<div class=\"form-error\" id=\"yaml-error\" role=\"alert\" data-testid=\"yaml-errors\"><ul>",
    );
    for (path, message) in &errors {
        let line = line_of(yaml, path);
        if let Some(l) = line {
            lines.push(l);
        }
        let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
        let name = if path.is_empty() {
            String::new()
        } else {
            format!("<code>{}</code> ", esc(path))
        };
        let _ = write!(out, "<li>{at}{name}{}</li>", esc(message));
    }
    out.push_str("</ul></div><pre class=\"listing\">");
    for (i, line) in yaml.lines().enumerate() {
        let n = i + 1;
        let class = if lines.contains(&n) {
            " class=\"err\""
        } else {
            ""
        };
        let _ = writeln!(out, "<span{class}>{n:>4}  {}</span>", esc(line));
    }
    out.push_str("</pre>");
    out
}

async fn save(ctx: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let yaml = form.get("yaml").to_string();
    let draft = form.get("draft") == "1";
    let query = if draft { "?draft=true" } else { "" };
    let reply = ctx
        .api(
            Method::PUT,
            &format!("/v1/flows/{}{query}", enc(&id)),
            Some(form.get("csrf")),
            Some(("application/yaml", yaml.clone().into_bytes())),
        )
        .await;
    if !reply.ok() {
        let extras = Extras {
            yaml: Some(yaml),
            errors: reply.errors(),
            ..Extras::default()
        };
        return flow_page(&ctx, &id, extras).await;
    }
    let notice = if draft {
        format!("Saved draft version {}", t(&reply.body["draftVersion"]))
    } else {
        format!("Saved and published version {}", t(&reply.body["version"]))
    };
    done(&format!("/flows/{}", enc(&id)), &notice)
}

/// Publish the draft, enable or disable the flow, through the API like every console action.
async fn lifecycle(
    ctx: Ctx,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let notice = match action.as_str() {
        "publish" => "Draft published",
        "enable" => "Flow enabled",
        "disable" => "Flow disabled: its webhook answers 404 and its schedule is idle",
        _ => return (axum::http::StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    let form = Form::parse(&body);
    let reply = ctx
        .api(
            Method::POST,
            &format!("/v1/flows/{}/{action}", enc(&id)),
            Some(form.get("csrf")),
            None,
        )
        .await;
    if !reply.ok() {
        return api_error(&ctx, "flows", &reply);
    }
    done(&format!("/flows/{}", enc(&id)), notice)
}

async fn test(ctx: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let live = form.get("live") == "1";
    let request = match (form.opt("event"), form.opt("payload")) {
        (Some(event), _) => json!({"event": event, "live": live}),
        (None, Some(text)) => match serde_json::from_str::<Value>(text) {
            Ok(payload) => json!({"payload": payload, "live": live}),
            Err(e) => {
                let extras = Extras {
                    errors: vec![
                        ("event".into(), format!("payload: not JSON: {e}")),
                        ("payload-text".into(), text.to_string()),
                    ],
                    ..Extras::default()
                };
                return flow_page(&ctx, &id, extras).await;
            }
        },
        (None, None) => {
            let extras = Extras {
                errors: vec![(
                    "event".into(),
                    "pick a sample event or paste a payload".into(),
                )],
                ..Extras::default()
            };
            return flow_page(&ctx, &id, extras).await;
        }
    };
    let reply = ctx
        .send(
            Method::POST,
            &format!("/v1/flows/{}/test", enc(&id)),
            &form,
            &request,
        )
        .await;
    let extras = if reply.ok() {
        Extras {
            trace: Some(reply.body),
            ..Extras::default()
        }
    } else {
        Extras {
            errors: vec![("event".into(), reply.detail())],
            ..Extras::default()
        }
    };
    flow_page(&ctx, &id, extras).await
}

async fn delete(ctx: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let reply = ctx
        .api(
            Method::DELETE,
            &format!("/v1/flows/{}", enc(&id)),
            Some(form.get("csrf")),
            None,
        )
        .await;
    if !reply.ok() {
        return api_error(&ctx, "flows", &reply);
    }
    done("/flows", "Flow deleted")
}

/// A line diff (longest common subsequence), `(-|+| , line)`; inputs are capped so a huge
/// flow cannot make the table quadratic in memory.
pub fn line_diff<'a>(old: &'a str, new: &'a str) -> Vec<(char, &'a str)> {
    const CAP: usize = 4000;
    let a: Vec<&str> = old.lines().take(CAP).collect();
    let b: Vec<&str> = new.lines().take(CAP).collect();
    let mut lcs = vec![vec![0u16; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(('-', a[i]));
            i += 1;
        } else {
            out.push(('+', b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| ('-', *l)));
    out.extend(b[j..].iter().map(|l| ('+', *l)));
    out
}

async fn diff(ctx: Ctx, Path(id): Path<String>) -> Response {
    let (Some(from), Some(to)) = (ctx.param("from"), ctx.param("to")) else {
        return done(
            &format!("/flows/{}", enc(&id)),
            "Pick two versions to compare",
        );
    };
    let mut texts = Vec::new();
    for v in [from, to] {
        let reply = ctx
            .get(&format!("/v1/flows/{}/versions/{}", enc(&id), enc(v)))
            .await;
        if !reply.ok() {
            return api_error(&ctx, "flows", &reply);
        }
        texts.push(crate::yaml::to_string(&reply.body["definition"]).unwrap_or_default());
    }
    let mut body = format!(
        "<p><a href=\"/flows/{}\">← back to the flow</a></p><pre class=\"diff\" data-testid=\"diff\">",
        esc(&id)
    );
    for (mark, line) in line_diff(&texts[0], &texts[1]) {
        let class = match mark {
            '+' => " class=\"add\"",
            '-' => " class=\"del\"",
            _ => "",
        };
        let _ = writeln!(body, "<span{class}>{mark} {}</span>", esc(line));
    }
    body.push_str("</pre>");
    ctx.page(&format!("Version {from} → {to}"), "flows", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_paths_point_at_their_lines() {
        let yaml = "name: x\ntrigger:\n  type: webhook\nsteps:\n- name: a\n  type: action\n- name: b\n  type: action\n  input:\n    message: 1\n";
        assert_eq!(line_of(yaml, "steps[1].input.message"), Some(10));
        assert_eq!(line_of(yaml, "steps[0]"), Some(5));
        assert_eq!(line_of(yaml, "trigger.type"), Some(3));
        assert_eq!(line_of(yaml, "nowhere"), None);
    }

    #[test]
    fn diffs_mark_added_and_removed_lines() {
        let d = line_diff("a\nb\nc\n", "a\nc\nd\n");
        assert_eq!(d, vec![(' ', "a"), ('-', "b"), (' ', "c"), ('+', "d")]);
    }
}
