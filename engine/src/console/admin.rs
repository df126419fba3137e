//! Plugins (installed, with input schemas; upload), secrets (names only; set, delete), and
//! projects with their members, invitations and API keys.

use super::html::{self, copyable, csrf_field, enc, esc, field_error, form_errors, json_block, t};
use super::{Console, Ctx, Form, Reply, api_error, done};
use crate::store::Role;
use axum::Router;
use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;
use std::fmt::Write;

pub fn routes() -> Router<Console> {
    Router::new()
        .route("/plugins", get(plugins))
        .route("/secrets", get(secrets))
        .route("/secrets/set", post(set_secret))
        .route("/secrets/{name}/delete", post(delete_secret))
        .route("/projects", get(projects))
        .route("/projects/new", post(create_project))
        .route("/projects/{id}", get(project))
        .route("/projects/{id}/members", post(add_member))
        .route("/projects/{id}/members/{user}/remove", post(remove_member))
        .route("/projects/{id}/keys", post(create_key))
        .route("/projects/{id}/keys/{key}/revoke", post(revoke_key))
        .route("/projects/{id}/invitations", post(invite))
}

async fn plugins(ctx: Ctx) -> Response {
    let reply = ctx.get("/v1/plugins").await;
    if !reply.ok() {
        return api_error(&ctx, "plugins", &reply);
    }
    let mut body = String::new();
    for p in reply.body["data"].as_array().into_iter().flatten() {
        let effects = if p["sideEffects"] == true {
            "side effects (skipped in test runs)"
        } else {
            "no side effects"
        };
        let _ = write!(
            body,
            "<article class=\"card\"><h3><code>{}@{}</code> <small>{}</small></h3><p>{}</p><details><summary>Input schema</summary>{}</details></article>",
            t(&p["name"]),
            t(&p["version"]),
            esc(effects),
            t(&p["description"]),
            json_block(&p["inputSchema"]),
        );
    }
    if ctx.can(Role::PlatformAdmin) {
        let _ = write!(
            body,
            r#"<h2>Install a plugin</h2><form class="card" data-upload-to="/v1/plugins" data-csrf="{}"><label>Component (.wasm) <input type="file" name="component" accept=".wasm,application/wasm" required></label><p class="field-error" data-upload-result role="alert"></p><button type="submit">Upload and install</button><noscript><p>Uploading needs JavaScript; or use <code>hookflow plugin install FILE</code>.</p></noscript></form>"#,
            esc(&ctx.csrf)
        );
    }
    ctx.page("Plugins", "plugins", &body)
}

async fn secrets(ctx: Ctx) -> Response {
    render_secrets(&ctx, &[]).await
}

async fn render_secrets(ctx: &Ctx, errors: &[(String, String)]) -> Response {
    let reply = ctx.get(&format!("/v1/secrets?{}", ctx.in_project())).await;
    if !reply.ok() {
        return api_error(ctx, "secrets", &reply);
    }
    let list = reply.body["data"].as_array().cloned().unwrap_or_default();
    let admin = ctx.can(Role::Admin);
    let mut body = String::from(
        "<p>Secret values are write-only: they are never shown again, only granted to steps by name.</p>",
    );
    if list.is_empty() {
        body.push_str("<p class=\"empty\">No secrets in this project.</p>");
    } else {
        body.push_str("<table data-testid=\"secrets\"><thead><tr><th>Name</th><th>Updated</th><th></th></tr></thead><tbody>");
        for s in &list {
            let delete = if admin {
                html::button_form(
                    &format!("/secrets/{}/delete", enc(&html::text(&s["name"]))),
                    "Delete",
                    &ctx.csrf,
                    Some("Delete this secret? Steps granted it will fail."),
                )
            } else {
                String::new()
            };
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td>{}</td><td>{delete}</td></tr>",
                t(&s["name"]),
                t(&s["updated"])
            );
        }
        body.push_str("</tbody></table>");
    }
    if admin {
        let _ = write!(
            body,
            r#"<h2>Set a secret</h2><form method="post" action="/secrets/set" class="card">{}{}<div class="row"><label>Name <input name="name" required pattern="[A-Za-z_][A-Za-z0-9_]*"></label><label>Value <input name="value" type="password" required autocomplete="off"></label></div>{}{}<button>Save secret</button></form>"#,
            csrf_field(&ctx.csrf),
            form_errors(&["name", "value"], errors),
            field_error("name", errors),
            field_error("value", errors),
        );
    }
    ctx.page("Secrets", "secrets", &body)
}

async fn set_secret(ctx: Ctx, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let path = format!("/v1/secrets/{}?{}", enc(form.get("name")), ctx.in_project());
    let reply = ctx
        .send(
            Method::PUT,
            &path,
            &form,
            &json!({"value": form.get("value")}),
        )
        .await;
    if !reply.ok() {
        return render_secrets(&ctx, &reply.errors()).await;
    }
    done("/secrets", &format!("Secret {} saved", form.get("name")))
}

async fn delete_secret(ctx: Ctx, Path(name): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let path = format!("/v1/secrets/{}?{}", enc(&name), ctx.in_project());
    let reply = ctx
        .api(Method::DELETE, &path, Some(form.get("csrf")), None)
        .await;
    if !reply.ok() {
        return render_secrets(&ctx, &reply.errors()).await;
    }
    done("/secrets", &format!("Secret {name} deleted"))
}

async fn projects(ctx: Ctx) -> Response {
    render_projects(&ctx, &[]).await
}

async fn render_projects(ctx: &Ctx, errors: &[(String, String)]) -> Response {
    let reply = ctx.get("/v1/projects").await;
    let mut body = String::from(
        "<table data-testid=\"projects\"><thead><tr><th>Project</th><th>Your role</th><th>Created</th></tr></thead><tbody>",
    );
    for p in reply.body["data"].as_array().into_iter().flatten() {
        let _ = write!(
            body,
            "<tr><td><a href=\"/projects/{id}\">{name}</a></td><td>{role}</td><td>{c}</td></tr>",
            id = t(&p["id"]),
            name = t(&p["name"]),
            role = t(&p["role"]),
            c = t(&p["created"])
        );
    }
    body.push_str("</tbody></table>");
    if ctx.can(Role::PlatformAdmin) {
        let _ = write!(
            body,
            r#"<h2>New project</h2><form method="post" action="/projects/new" class="card">{}{}<label>Name <input name="name" required></label>{}<button>Create project</button></form>"#,
            csrf_field(&ctx.csrf),
            form_errors(&["name"], errors),
            field_error("name", errors)
        );
    }
    ctx.page("Projects", "projects", &body)
}

async fn create_project(ctx: Ctx, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let reply = ctx
        .send(
            Method::POST,
            "/v1/projects",
            &form,
            &json!({"name": form.get("name")}),
        )
        .await;
    if !reply.ok() {
        return render_projects(&ctx, &reply.errors()).await;
    }
    done(
        &format!("/projects/{}", t(&reply.body["id"])),
        "Project created",
    )
}

async fn project(ctx: Ctx, Path(id): Path<String>) -> Response {
    project_page(&ctx, &id, &[], None).await
}

/// A project's members, invitations and keys; `shown` is a key or token to show once.
async fn project_page(
    ctx: &Ctx,
    id: &str,
    errors: &[(String, String)],
    shown: Option<(&str, &str)>,
) -> Response {
    let project = ctx.get(&format!("/v1/projects/{}", enc(id))).await;
    if !project.ok() {
        return api_error(ctx, "projects", &project);
    }
    let admin = project.body["role"] == "admin";
    let mut body = String::new();
    if let Some((label, value)) = shown {
        body.push_str("<div class=\"card\" data-testid=\"shown-once\"><p><b>Copy it now: it is not shown again.</b></p>");
        body.push_str(&copyable(label, value, "shown-once-value"));
        body.push_str("</div>");
    }
    body.push_str(&form_errors(&["email", "role", "name"], errors));
    let members = ctx.get(&format!("/v1/projects/{}/members", enc(id))).await;
    body.push_str("<h2>Members</h2><table data-testid=\"members\"><thead><tr><th>Email</th><th>Name</th><th>Role</th><th></th></tr></thead><tbody>");
    for m in members.body["data"].as_array().into_iter().flatten() {
        let remove = if admin {
            html::button_form(
                &format!("/projects/{}/members/{}/remove", esc(id), t(&m["userId"])),
                "Remove",
                &ctx.csrf,
                Some("Remove this member from the project?"),
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{remove}</td></tr>",
            t(&m["email"]),
            t(&m["name"]),
            t(&m["role"])
        );
    }
    body.push_str("</tbody></table>");
    if !admin {
        let title = format!("Project {}", html::text(&project.body["name"]));
        return ctx.page(&title, "projects", &body);
    }
    let roles = "<option>viewer</option><option>operator</option><option>editor</option><option>admin</option>";
    let csrf = csrf_field(&ctx.csrf);
    let _ = write!(
        body,
        r#"<form method="post" action="/projects/{id}/members" class="card row">{csrf}<label>Add a person by email <input name="email" type="email" required></label><label>Role <select name="role">{roles}</select></label><button>Add member</button></form>{}
<form method="post" action="/projects/{id}/invitations" class="card row">{csrf}<label>Invite someone without an account <input name="email" type="email" required></label><label>Role <select name="role">{roles}</select></label><button>Create invitation</button></form>"#,
        field_error("email", errors),
        id = esc(id),
    );
    let keys = ctx.get(&format!("/v1/projects/{}/api-keys", enc(id))).await;
    body.push_str("<h2>API keys</h2><table data-testid=\"keys\"><thead><tr><th>Name</th><th>Prefix</th><th>Role</th><th>Expires</th><th>Last used</th><th></th></tr></thead><tbody>");
    for k in keys.body["data"].as_array().into_iter().flatten() {
        let action = if k["revokedAt"].is_string() {
            "revoked".to_string()
        } else {
            html::button_form(
                &format!("/projects/{}/keys/{}/revoke", esc(id), t(&k["id"])),
                "Revoke",
                &ctx.csrf,
                Some("Revoke this key? Anything using it stops working at once."),
            )
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td><code>{}…</code></td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            t(&k["name"]),
            t(&k["prefix"]),
            t(&k["role"]),
            t(&k["expiresAt"]),
            k["lastUsedAt"].as_str().map_or("never".to_string(), esc),
        );
    }
    let _ = write!(
        body,
        r#"</tbody></table><form method="post" action="/projects/{id}/keys" class="card row">{csrf}<label>Key name <input name="name" required></label><label>Role <select name="role">{roles}</select></label><label>Expires (UTC, optional) <input type="datetime-local" name="expires"></label><button>Create API key</button></form>"#,
        id = esc(id),
    );
    let title = format!("Project {}", html::text(&project.body["name"]));
    ctx.page(&title, "projects", &body)
}

async fn after(ctx: &Ctx, id: &str, reply: Reply, notice: &str) -> Response {
    if reply.ok() {
        done(&format!("/projects/{}", enc(id)), notice)
    } else {
        project_page(ctx, id, &reply.errors(), None).await
    }
}

async fn add_member(ctx: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let request = json!({"email": form.get("email"), "role": form.get("role")});
    let reply = ctx
        .send(
            Method::POST,
            &format!("/v1/projects/{}/members", enc(&id)),
            &form,
            &request,
        )
        .await;
    after(&ctx, &id, reply, "Member saved").await
}

async fn remove_member(
    ctx: Ctx,
    Path((id, user)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let form = Form::parse(&body);
    let path = format!("/v1/projects/{}/members/{}", enc(&id), enc(&user));
    let reply = ctx
        .api(Method::DELETE, &path, Some(form.get("csrf")), None)
        .await;
    after(&ctx, &id, reply, "Member removed").await
}

async fn create_key(ctx: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let mut request = json!({"name": form.get("name"), "role": form.get("role")});
    if let Some(expires) = form.opt("expires") {
        request["expiresAt"] = json!(html::utc_of_local(expires));
    }
    let reply = ctx
        .send(
            Method::POST,
            &format!("/v1/projects/{}/api-keys", enc(&id)),
            &form,
            &request,
        )
        .await;
    if !reply.ok() {
        return project_page(&ctx, &id, &reply.errors(), None).await;
    }
    let key = html::text(&reply.body["key"]);
    project_page(&ctx, &id, &[], Some(("API key", &key))).await
}

async fn revoke_key(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let form = Form::parse(&body);
    let path = format!("/v1/projects/{}/api-keys/{}", enc(&id), enc(&key));
    let reply = ctx
        .api(Method::DELETE, &path, Some(form.get("csrf")), None)
        .await;
    after(&ctx, &id, reply, "Key revoked").await
}

async fn invite(ctx: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let request = json!({"email": form.get("email"), "role": form.get("role")});
    let reply = ctx
        .send(
            Method::POST,
            &format!("/v1/projects/{}/invitations", enc(&id)),
            &form,
            &request,
        )
        .await;
    if !reply.ok() {
        return project_page(&ctx, &id, &reply.errors(), None).await;
    }
    let token = html::text(&reply.body["token"]);
    project_page(&ctx, &id, &[], Some(("Invitation token", &token))).await
}
