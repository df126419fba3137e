//! The web console, served by `hookflow serve` at `/`: server-rendered HTML pages with a little
//! progressive enhancement (copy buttons, confirmations, auto-submitting selects) and no build
//! step or front-end toolchain.
//!
//! The console holds no authority of its own. Every page and every form calls the `/v1` API
//! in-process with the visitor's session cookie and, for changes, the CSRF token their form
//! carried (see [`Ctx::api`]); what a role may not do through the API, the API refuses here too.
//! Controls a role cannot use are hidden ([`Ctx::can`]) as a courtesy, not as the check.

mod admin;
mod audit;
mod flows;
pub mod graph;
pub mod html;
mod runs;
mod streaming;
pub mod trace;

use crate::access::token;
use crate::api::AppState;
use crate::api::guard::{self, CSRF_HEADER, SESSION_COOKIE, session_cookie};
use crate::store::Role;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header, request::Parts};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use html::{Chrome, esc};
use serde_json::Value;
use std::net::SocketAddr;
use tower::ServiceExt;

/// The cookie remembering which project the console shows.
const PROJECT_COOKIE: &str = "hookflow_project";

/// What console handlers share: the application and the `/v1` router they call in-process.
#[derive(Clone)]
pub struct Console {
    pub app: AppState,
    api: Router,
}

/// `api` (the `/v1` router) with the console's pages added.
pub fn router(api: Router, app: AppState) -> Router {
    let console = Console {
        app,
        api: api.clone(),
    };
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to("/flows") }))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route(
            "/accept-invitation",
            get(invitation_page).post(accept_invitation),
        )
        .route("/switch-project", get(switch_project))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        // No icon: an empty answer, so browsers do not log a 404 on every page.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .merge(flows::routes())
        .merge(runs::routes())
        .merge(streaming::routes())
        .merge(audit::routes())
        .merge(admin::routes())
        .layer(axum::middleware::map_response(protect))
        .with_state(console);
    api.merge(pages)
}

/// Headers every console answer carries: its own origin only for scripts, styles and forms,
/// never framed (no clickjacking), no referrer beyond this server, no MIME sniffing.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// What of the visitor's request the API needs to treat a call as theirs: the peer address and
/// the proxy headers (which the API believes only from trusted proxies).
#[derive(Clone, Default)]
struct Origin {
    peer: Option<ConnectInfo<SocketAddr>>,
    forwarded: Vec<(axum::http::HeaderName, HeaderValue)>,
}

impl Origin {
    fn of(parts: &Parts) -> Origin {
        Origin {
            peer: parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned(),
            forwarded: ["x-forwarded-for", "x-forwarded-proto"]
                .into_iter()
                .filter_map(|name| {
                    let value = parts.headers.get(name)?.clone();
                    Some((axum::http::HeaderName::from_static(name), value))
                })
                .collect(),
        }
    }
}

impl Console {
    /// Sends `request` to the `/v1` router in-process as coming from `origin`.
    async fn call(&self, origin: &Origin, mut request: Request<Body>) -> Reply {
        for (name, value) in &origin.forwarded {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        if let Some(peer) = origin.peer {
            request.extensions_mut().insert(peer);
        }
        let response = match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 64 << 20)
            .await
            .unwrap_or_default();
        Reply {
            status: parts.status,
            body: serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
            headers: parts.headers,
        }
    }

    /// A public API call (sign-in, accepting an invitation) with a JSON body.
    async fn post_public(&self, origin: &Origin, path: &str, payload: &Value) -> Reply {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(payload.to_string()))
            .expect("a valid in-process request");
        self.call(origin, request).await
    }
}

/// An answer of the API.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's detail.
    pub fn detail(&self) -> String {
        self.body["detail"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("the server answered {}", self.status))
    }

    /// The problem as `(field, message)` pairs: each `errors[]` entry by its path (invalid
    /// flows), else the detail split at its leading `field:`.
    pub fn errors(&self) -> Vec<(String, String)> {
        if let Some(list) = self.body["errors"].as_array() {
            return list
                .iter()
                .map(|e| {
                    (
                        e["path"].as_str().unwrap_or_default().to_string(),
                        e["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
        }
        let detail = self.detail();
        match detail.split_once(": ") {
            Some((field, message))
                if !field.is_empty() && field.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                vec![(field.to_string(), message.to_string())]
            }
            _ => vec![(String::new(), detail)],
        }
    }
}

/// A signed-in visitor: their session, who they are, and the project the console shows.
pub struct Ctx {
    console: Console,
    cookie: String,
    /// The session's CSRF token, put into every form (the API checks what the form sends back).
    pub csrf: String,
    origin: Origin,
    pub me: Value,
    /// `(id, name)` of the visible projects.
    pub projects: Vec<(String, String)>,
    pub project: String,
    /// The page URL's query, parsed like a form.
    pub query: Form,
}

impl FromRequestParts<Console> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Ctx, Response> {
        let to_sign_in = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            Redirect::to(&format!("/sign-in?next={}", html::enc(next))).into_response()
        };
        let Some(cookie) = session_cookie(&parts.headers) else {
            return Err(to_sign_in());
        };
        let session = console
            .app
            .store
            .session(&token::digest(&cookie))
            .await
            .ok()
            .flatten();
        let Some((session, _)) = session else {
            return Err(to_sign_in());
        };
        let mut ctx = Ctx {
            console: console.clone(),
            cookie,
            csrf: session.csrf,
            origin: Origin::of(parts),
            me: Value::Null,
            projects: Vec::new(),
            project: String::new(),
            query: Form::of_query(parts.uri.query()),
        };
        // The API decides whether the session still counts (idle and absolute expiry).
        let me = ctx.get("/v1/auth/me").await;
        if me.status == StatusCode::UNAUTHORIZED {
            return Err(to_sign_in());
        }
        ctx.me = me.body;
        let projects = ctx.get("/v1/projects").await;
        ctx.projects = projects.body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (html::text(&p["id"]), html::text(&p["name"])))
            .collect();
        let remembered = guard::cookie(&parts.headers, PROJECT_COOKIE);
        ctx.project = remembered
            .filter(|p| ctx.projects.iter().any(|(id, _)| id == p))
            .or_else(|| {
                ctx.projects
                    .iter()
                    .find(|(id, _)| id == "default")
                    .or(ctx.projects.first())
                    .map(|(id, _)| id.clone())
            })
            .unwrap_or_else(|| "default".into());
        Ok(ctx)
    }
}

impl Ctx {
    /// Calls the API in-process as this visitor. `csrf` is the token a submitted form carried
    /// (changes are refused without the right one); `body` is JSON, or raw bytes with a type.
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        csrf: Option<&str>,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::COOKIE, format!("{SESSION_COOKIE}={}", self.cookie));
        if let Some(csrf) = csrf {
            request = request.header(CSRF_HEADER, csrf);
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let request = request.body(body).expect("a valid in-process request");
        self.console.call(&self.origin, request).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.api(Method::GET, path, None, None).await
    }

    /// Sends a form's change as JSON with the CSRF token the form carried.
    pub async fn send(&self, method: Method, path: &str, form: &Form, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.api(
            method,
            path,
            Some(form.get("csrf")),
            Some(("application/json", bytes)),
        )
        .await
    }

    /// A query parameter of the page's URL.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.opt(name)
    }

    /// Whether the visitor holds at least `role` in the current project (platform roles
    /// included): only to hide controls the API would refuse anyway.
    pub fn can(&self, role: Role) -> bool {
        if self.me["platformRole"] == "platform-admin" {
            return true;
        }
        if role == Role::PlatformAdmin {
            return false;
        }
        if role == Role::Auditor {
            return self.me["platformRole"] == "auditor" || self.can(Role::Admin);
        }
        self.me["projects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["id"] == self.project.as_str())
            .filter_map(|p| p["role"].as_str()?.parse::<Role>().ok())
            .any(|held| held.project_rank() >= role.project_rank())
    }

    /// A full page in the layout.
    pub fn page(&self, title: &str, section: &str, body: &str) -> Response {
        let who = self.me["email"].as_str().unwrap_or("?").to_string();
        let role = self.me["platformRole"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                self.me["projects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["id"] == self.project.as_str())
                    .map(|p| html::text(&p["role"]))
            })
            .unwrap_or_else(|| "no role here".into());
        let chrome = Chrome {
            who: &who,
            via_role: &role,
            projects: &self.projects,
            project: &self.project,
            csrf: &self.csrf,
            section,
        };
        Html(html::page(title, &chrome, self.param("notice"), body)).into_response()
    }

    /// `?projectId=` of the current project, for API paths.
    pub fn in_project(&self) -> String {
        format!("projectId={}", html::enc(&self.project))
    }
}

/// A submitted form's fields (or a URL's query), in order (repeated names allowed).
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn of_query(query: Option<&str>) -> Form {
        Form::parse(query.unwrap_or("").as_bytes())
    }

    pub fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// `name` when it is not empty.
    pub fn opt(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|v| !v.trim().is_empty())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Redirects after a change, with a notice for the next page.
pub fn done(to: &str, notice: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}notice={}", html::enc(notice))).into_response()
}

/// A page answering an API error that no form shows (a 404 on a page's own record, a 403).
pub fn api_error(ctx: &Ctx, section: &str, reply: &Reply) -> Response {
    let mut response = ctx.page(
        &format!(
            "{} {}",
            reply.status.as_u16(),
            reply.status.canonical_reason().unwrap_or("")
        ),
        section,
        &format!(
            "<p class=\"form-error\" role=\"alert\">{}</p>",
            esc(&reply.detail())
        ),
    );
    *response.status_mut() = reply.status;
    response
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
        .into_response()
}

fn sign_in_form(email: &str, next: &str, errors: &[(String, String)]) -> String {
    format!(
        r#"{top}<form method="post" action="/sign-in" class="card">
<input type="hidden" name="next" value="{next}">
<label>Email <input name="email" type="email" autocomplete="username" required value="{email}" aria-describedby="email-error"></label>{email_error}
<label>Password <input name="password" type="password" autocomplete="current-password" required aria-describedby="password-error"></label>{password_error}
<button type="submit">Sign in</button></form>"#,
        top = html::form_errors(&["email", "password"], errors),
        next = esc(next),
        email = esc(email),
        email_error = html::field_error("email", errors),
        password_error = html::field_error("password", errors),
    )
}

async fn sign_in_page(uri: axum::http::Uri) -> Html<String> {
    let query = Form::of_query(uri.query());
    let next = query.opt("next").unwrap_or("/flows");
    let notice = query
        .opt("notice")
        .map(|v| format!("<p class=\"notice\" role=\"status\">{}</p>", esc(v)))
        .unwrap_or_default();
    Html(html::bare(
        "Sign in",
        &format!("{notice}{}", sign_in_form("", next, &[])),
    ))
}

/// Only paths of this server: a `next` parameter cannot send anyone elsewhere.
fn local_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/flows"
    }
}

async fn sign_in(
    State(console): State<Console>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Response {
    let form = Form::parse(&body);
    let payload = serde_json::json!({"email": form.get("email"), "password": form.get("password")});
    let reply = console
        .post_public(&Origin::of(&parts), "/v1/auth/sign-in", &payload)
        .await;
    let status = reply.status;
    let cookie = reply.headers.get(header::SET_COOKIE).cloned();
    let retry_after = reply.headers.get(header::RETRY_AFTER).cloned();
    match (status.is_success(), cookie) {
        (true, Some(cookie)) => {
            let mut response = Redirect::to(local_path(form.get("next"))).into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        _ => {
            let mut errors = reply.errors();
            // The API names no field for a wrong password; the form shows it at the password.
            for (field, _) in errors.iter_mut() {
                if field.is_empty() || field == "body" {
                    *field = "password".into();
                }
            }
            let page = html::bare(
                "Sign in",
                &sign_in_form(form.get("email"), local_path(form.get("next")), &errors),
            );
            let mut response = (status, Html(page)).into_response();
            if let Some(wait) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, wait);
            }
            response
        }
    }
}

async fn sign_out(ctx: Ctx, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let reply = ctx
        .api(
            Method::POST,
            "/v1/auth/sign-out",
            Some(form.get("csrf")),
            None,
        )
        .await;
    let mut response = Redirect::to("/sign-in").into_response();
    if let Some(cookie) = reply.headers.get(header::SET_COOKIE) {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, cookie.clone());
    }
    response
}

fn invitation_form(token: &str, errors: &[(String, String)]) -> String {
    format!(
        r#"<p>Choose your name and a password (at least 12 characters). If you already have an account with the invited e-mail, give its password.</p>{top}<form method="post" action="/accept-invitation" class="card">
<input type="hidden" name="token" value="{token}">
<label>Name <input name="name" autocomplete="name"></label>
<label>Password <input name="password" type="password" autocomplete="new-password" required aria-describedby="password-error"></label>{password_error}
<button type="submit">Join the project</button></form>"#,
        top = html::form_errors(&["password"], errors),
        token = esc(token),
        password_error = html::field_error("password", errors),
    )
}

async fn invitation_page(uri: axum::http::Uri) -> Html<String> {
    let query = Form::of_query(uri.query());
    let token = query.get("token");
    Html(html::bare(
        "Accept the invitation",
        &invitation_form(token, &[]),
    ))
}

/// Accepts an invitation through the API (public, like sign-in), then sends the person to sign in.
async fn accept_invitation(
    State(console): State<Console>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Response {
    let form = Form::parse(&body);
    let mut payload =
        serde_json::json!({"token": form.get("token"), "password": form.get("password")});
    if let Some(name) = form.opt("name") {
        payload["name"] = serde_json::json!(name);
    }
    let reply = console
        .post_public(&Origin::of(&parts), "/v1/auth/accept-invitation", &payload)
        .await;
    if reply.ok() {
        return done("/sign-in", "You joined the project: sign in");
    }
    let status = reply.status;
    let mut errors = reply.errors();
    for (field, _) in errors.iter_mut() {
        if field != "password" {
            *field = String::new();
        }
    }
    let page = html::bare(
        "Accept the invitation",
        &invitation_form(form.get("token"), &errors),
    );
    (status, Html(page)).into_response()
}

/// Remembers the chosen project (a plain preference: every page still asks the API).
async fn switch_project(uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let project = Form::of_query(uri.query()).get("project").to_string();
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or_else(|| "/flows".into());
    let mut response = Redirect::to(local_path(&back)).into_response();
    let cookie = format!(
        "{PROJECT_COOKIE}={}; Path=/; SameSite=Strict; Max-Age=31536000",
        html::enc(&project)
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(local_path("/runs?status=FAILED"), "/runs?status=FAILED");
        assert_eq!(local_path("//evil.example"), "/flows");
        assert_eq!(local_path("https://evil.example"), "/flows");
    }

    #[test]
    fn problems_map_to_fields() {
        let reply = Reply {
            status: StatusCode::BAD_REQUEST,
            body: serde_json::json!({"detail": "url: must be https"}),
            headers: HeaderMap::new(),
        };
        assert_eq!(
            reply.errors(),
            [("url".to_string(), "must be https".to_string())]
        );
    }
}
