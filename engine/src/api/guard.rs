//! Where access is decided: every `/v1` route is declared here with what it needs
//! ([`Route`]: method, path, [`Need`]), and [`guarded`] puts one middleware in front of each
//! that resolves the caller, finds the project the request touches and asks
//! [`Principal::may`]. Handlers receive the outcome as a [`Caller`] and never check access
//! themselves. A route that is not declared here does not exist.

use super::{ApiError, AppState, client_ip_of};
use crate::access::{Denied, Need, Principal, Target, Via, token};
use crate::store::{Actor, Owned, Owner, Scope, epoch_ms};
use crate::trigger::verify::secrets_equal;
use axum::Router;
use axum::extract::{RawPathParams, Request, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hookflow_session";
/// The header a cookie-authenticated state change must carry the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Activity is written back at most this often per session or key (last-used times are for
/// people, not for accounting; this keeps reads from becoming writes).
const TOUCH_EVERY_MS: i64 = 60_000;

/// One declared route.
pub struct Route {
    pub method: Method,
    /// Below `/v1`, in axum's syntax (`/flows/{id}`).
    pub path: &'static str,
    pub need: Need,
    /// What the OpenAPI document says of it ([`super::openapi`]), declared beside the handler.
    pub doc: Doc,
    handler: MethodRouter<AppState>,
}

/// The JSON Schema of one type, from the document's generator (so named types land in
/// `components/schemas` once and are `$ref`ed).
pub type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// A route's part of the OpenAPI document: the request it takes and the success it answers.
/// Errors need no declaration: every route may answer problem+json ([`super::ApiError`]).
#[derive(Default)]
pub struct Doc {
    pub summary: &'static str,
    /// The query string, as the struct the handler deserializes it into.
    pub query: Option<SchemaFn>,
    pub body: Option<RequestBody>,
    /// Each success status and, unless it answers no content, its media type and schema.
    pub success: Vec<(StatusCode, Option<(&'static str, SchemaFn)>)>,
    /// The answer may be whatever the flow's `respond` step set (any status, any body).
    pub verbatim: bool,
}

/// A request body: the media types it is accepted as, with one schema.
pub struct RequestBody {
    pub media: &'static [&'static str],
    pub schema: SchemaFn,
}

fn schema_of<T: schemars::JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    generator.subschema_for::<T>()
}

macro_rules! route_fn {
    ($($name:ident => $method:ident),+) => {$(
        #[doc = concat!("Declares a `", stringify!($method), "` route.")]
        pub fn $name<H, T>(path: &'static str, need: Need, handler: H) -> Route
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            Route {
                method: Method::$method,
                path,
                need,
                doc: Doc::default(),
                handler: axum::routing::$name(handler),
            }
        }
    )+};
}
route_fn!(get => GET, post => POST, put => PUT, patch => PATCH, delete => DELETE);

impl Route {
    /// Raises the body limit of this route (plugin uploads).
    pub fn body_limit(mut self, bytes: usize) -> Route {
        self.handler = self
            .handler
            .layer(axum::extract::DefaultBodyLimit::max(bytes));
        self
    }
}

/// The document's side of a declaration: `guard::post(…).doc("Creates a flow")
/// .body::<Flow>().returns::<FlowView>(StatusCode::CREATED)`.
impl Route {
    /// The one-line summary of the operation.
    pub fn doc(mut self, summary: &'static str) -> Route {
        self.doc.summary = summary;
        self
    }

    /// The query parameters: the fields of `Q`, the struct the handler parses the query into.
    pub fn query<Q: schemars::JsonSchema>(mut self) -> Route {
        self.doc.query = Some(schema_of::<Q>);
        self
    }

    /// A JSON request body of type `T`.
    pub fn body<T: schemars::JsonSchema>(self) -> Route {
        self.body_as::<T>(&["application/json"])
    }

    /// A request body of type `T` accepted as each of `media` (flows: JSON or YAML).
    pub fn body_as<T: schemars::JsonSchema>(mut self, media: &'static [&'static str]) -> Route {
        self.doc.body = Some(RequestBody {
            media,
            schema: schema_of::<T>,
        });
        self
    }

    /// A request body of raw bytes as `media` (plugin components).
    pub fn binary_body(mut self, media: &'static [&'static str]) -> Route {
        self.doc.body = Some(RequestBody {
            media,
            schema: |_| schemars::json_schema!({"type": "string", "format": "binary"}),
        });
        self
    }

    /// Answers `status` with a JSON body of type `T`.
    pub fn returns<T: schemars::JsonSchema>(self, status: StatusCode) -> Route {
        self.returns_as::<T>(status, "application/json")
    }

    /// Answers `status` with a body of type `T` as `media`.
    pub fn returns_as<T: schemars::JsonSchema>(
        mut self,
        status: StatusCode,
        media: &'static str,
    ) -> Route {
        self.doc
            .success
            .push((status, Some((media, schema_of::<T>))));
        self
    }

    /// Answers 200 with one page of `T`s: `{"data": [...], "next", "previous"}`.
    pub fn page<T: schemars::JsonSchema>(self) -> Route {
        self.returns::<crate::store::Page<T>>(StatusCode::OK)
    }

    /// Answers `status` with no body (`204`).
    pub fn empty(mut self, status: StatusCode) -> Route {
        self.doc.success.push((status, None));
        self
    }

    /// `/sync`: besides its declared answers, whatever the flow's `respond` step set.
    pub fn verbatim(mut self) -> Route {
        self.doc.verbatim = true;
        self
    }
}

/// The caller of a guarded route and what the guard resolved for it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The project of a project route (`None` for a platform-wide `QueryOrPlatform` call and
    /// for routes that name no project).
    pub scope: Option<Scope>,
    /// For `Visible` lists and the audit log: the projects to show; `None` is every project.
    pub visible: Option<Vec<String>>,
    /// The client address (trusted proxies honoured).
    pub ip: Option<String>,
}

impl Caller {
    /// Who to record in audit events.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.principal.user_id.clone()),
            user_email: self.principal.email.clone(),
            ip: self.ip.clone(),
        }
    }

    /// The project the guard resolved; routes declared with a project target always have one.
    pub fn project(&self) -> Result<&Scope, ApiError> {
        self.scope.as_ref().ok_or_else(|| {
            ApiError::bad_request("projectId: this call needs a project (?projectId=...)")
        })
    }
}

impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &AppState,
    ) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "route has no access declaration",
            )
        })
    }
}

/// The router of `routes`, each behind its own access check.
pub fn guarded(app: &AppState, routes: Vec<Route>) -> Router<AppState> {
    let mut router = Router::new();
    for route in routes {
        let check = middleware::from_fn_with_state((app.clone(), route.need), authorize);
        router = router.route(route.path, route.handler.route_layer(check));
    }
    router
}

async fn authorize(
    State((app, need)): State<(AppState, Need)>,
    request: Request,
    next: Next,
) -> Response {
    if need == Need::Public {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    match decide(&app, need, &mut parts).await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => error.into_response(),
    }
}

/// Resolves the caller and the project, and decides.
async fn decide(
    app: &AppState,
    need: Need,
    parts: &mut axum::http::request::Parts,
) -> Result<Caller, ApiError> {
    let ip = client_ip_of(parts, app);
    let principal = authenticate(app, parts, ip.clone()).await?;
    principal.passes(need).map_err(denied)?;
    let mut caller = Caller {
        principal,
        scope: None,
        visible: None,
        ip,
    };
    match need {
        Need::AuditLog => caller.visible = caller.principal.audit_scope().map_err(denied)?,
        Need::Project(role, Target::Visible) => {
            caller.visible = caller.principal.projects_at(role);
        }
        Need::Project(role, target) => {
            let project = project_of(app, &caller.principal, target, parts).await?;
            // `None`: a platform-wide target, which only platform admins get past `project_of`.
            if let Some(project) = project {
                caller.principal.may(&project, role).map_err(denied)?;
                caller.scope = Some(Scope {
                    platform_id: "default".into(),
                    project_id: project,
                });
            }
        }
        Need::Public | Need::SignedIn | Need::Platform => {}
    }
    Ok(caller)
}

fn denied(denied: Denied) -> ApiError {
    match denied {
        Denied::Hidden => ApiError::not_found("not found"),
        Denied::Forbidden(why) => ApiError::new(StatusCode::FORBIDDEN, why),
    }
}

/// The `{id}` of the matched path.
async fn path_id(
    app: &AppState,
    parts: &mut axum::http::request::Parts,
) -> Result<String, ApiError> {
    let params = <RawPathParams as axum::extract::FromRequestParts<AppState>>::from_request_parts(
        parts, app,
    )
    .await
    .map_err(|_| ApiError::bad_request("path: malformed"))?;
    params
        .iter()
        .find(|(name, _)| *name == "id")
        .map(|(_, value)| value.to_string())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "route declares a path target without {id}",
            )
        })
}

/// `?projectId=` of the query, if given.
fn query_project(parts: &axum::http::request::Parts) -> Result<Option<String>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Q {
        #[serde(rename = "projectId")]
        project_id: Option<String>,
    }
    let query = parts.uri.query().unwrap_or("");
    let q: Q = axum::extract::Query::<Q>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::bad_request("query: malformed"))?,
    )
    .map(|q| q.0)
    .map_err(|_| ApiError::bad_request("projectId: malformed"))?;
    match q.project_id {
        Some(p) if p.is_empty() => Err(ApiError::bad_request("projectId: empty")),
        other => Ok(other),
    }
}

/// The project a request touches: `None` for a platform-wide one.
async fn project_of(
    app: &AppState,
    principal: &Principal,
    target: Target,
    parts: &mut axum::http::request::Parts,
) -> Result<Option<String>, ApiError> {
    let owned = match target {
        Target::Flow => Owned::Flow,
        Target::Run => Owned::Run,
        Target::Destination => Owned::Destination,
        Target::PathProject => return path_id(app, parts).await.map(Some),
        Target::QueryProject | Target::QueryOrPlatform => {
            return match query_project(parts)? {
                // Members learn of foreign projects as 404 from `may`; a platform admin, who
                // passes everywhere, hears it here.
                Some(p) if principal.is_platform_admin() => {
                    if app.store.get_project(&p).await?.is_none() {
                        return Err(ApiError::not_found(format!("project {p} not found")));
                    }
                    Ok(Some(p))
                }
                Some(p) => Ok(Some(p)),
                None if target == Target::QueryOrPlatform && principal.is_platform_admin() => {
                    Ok(None)
                }
                None => Ok(Some(principal.own_project())),
            };
        }
        Target::Visible => unreachable!("lists are decided without a project"),
    };
    let id = path_id(app, parts).await?;
    match app.store.owner(owned, &id).await? {
        None => Err(hidden(target, &id)),
        Some(Owner::Platform) if principal.is_platform_admin() => Ok(None),
        // A platform-wide destination does not exist for project callers.
        Some(Owner::Platform) => Err(hidden(target, &id)),
        Some(Owner::Project(project)) => Ok(Some(project)),
    }
}

/// A 404 in the words the handler would use for a missing record.
fn hidden(target: Target, id: &str) -> ApiError {
    let what = match target {
        Target::Flow => "flow",
        Target::Run => "run",
        Target::Destination => "destination",
        _ => "project",
    };
    ApiError::not_found(format!("{what} {id} not found"))
}

/// Who is calling: the admin token, an API key or a session cookie, in that order.
async fn authenticate(
    app: &AppState,
    parts: &axum::http::request::Parts,
    ip: Option<String>,
) -> Result<Principal, ApiError> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "Authorization: expected \"Bearer <admin token or API key>\"",
                )
            })?;
        if secrets_equal(token.as_bytes(), app.admin_token.as_bytes()) {
            super::record_sign_in(app, ip).await;
            return Ok(Principal::admin_token());
        }
        if token.starts_with(token::API_KEY_PREFIX) {
            return api_key(app, token).await;
        }
        return Err(ApiError::unauthorized("invalid token"));
    }
    if let Some(cookie) = session_cookie(&parts.headers) {
        return session(app, parts, &cookie).await;
    }
    Err(ApiError::unauthorized(
        "missing credentials: send Authorization: Bearer <admin token or API key>, or sign in",
    ))
}

async fn api_key(app: &AppState, key: &str) -> Result<Principal, ApiError> {
    let invalid = || ApiError::unauthorized("invalid, revoked or expired API key");
    let record = app
        .store
        .api_key_by_hash(&token::digest(key))
        .await?
        .ok_or_else(invalid)?;
    let now = epoch_ms();
    if record.revoked.is_some() || record.expires_ms.is_some_and(|at| at <= now) {
        return Err(invalid());
    }
    if record
        .last_used_ms
        .is_none_or(|at| now - at >= TOUCH_EVERY_MS)
    {
        app.store.touch_api_key(&record.id, now).await?;
    }
    let (platform_role, projects) = match &record.project_id {
        Some(project) => (None, vec![(project.clone(), record.role)]),
        None => (Some(record.role), Vec::new()),
    };
    Ok(Principal {
        user_id: format!("key:{}", record.id),
        email: None,
        via: Via::ApiKey { id: record.id },
        platform_role,
        projects,
    })
}

/// The value of the session cookie, if the request carries one.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of the cookie `name`, if the request carries a non-empty one.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

async fn session(
    app: &AppState,
    parts: &axum::http::request::Parts,
    cookie: &str,
) -> Result<Principal, ApiError> {
    let id = token::digest(cookie);
    let ended = || ApiError::unauthorized("session ended or expired: sign in again");
    let (session, user) = app.store.session(&id).await?.ok_or_else(ended)?;
    let now = epoch_ms();
    if now >= session.expires_ms || now - session.last_seen_ms >= app.sessions.idle_ms {
        app.store.expire_session(&id).await?;
        return Err(ended());
    }
    if user.disabled {
        return Err(ended());
    }
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !secrets_equal(presented, session.csrf.as_bytes()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "X-CSRF-Token: missing or wrong; send the csrfToken from sign-in with every change",
            ));
        }
    }
    if now - session.last_seen_ms >= TOUCH_EVERY_MS {
        app.store.touch_session(&id, now).await?;
    }
    let projects = app.store.memberships(&user.id).await?;
    Ok(Principal {
        user_id: user.id,
        email: Some(user.email),
        via: Via::Session {
            id,
            csrf: session.csrf,
        },
        platform_role: user.platform_role,
        projects,
    })
}

/// What every route needs, for tests that walk the table: `(method, /v1 path, need)`.
pub fn table(routes: &[Route]) -> Vec<(Method, String, Need)> {
    routes
        .iter()
        .map(|r| (r.method.clone(), format!("/v1{}", r.path), r.need))
        .collect()
}
