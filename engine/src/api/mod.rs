//! The HTTP API: one route table per resource, one error type, and one place where access is
//! decided ([`guard`]): every `/v1` route declares what it needs; webhooks are public and
//! authenticate per flow.

mod audit;
mod auth;
mod catalog;
mod destinations;
mod error;
mod flows;
pub mod guard;
pub mod openapi;
mod people;
mod plugins;
mod replay;
mod runs;
mod secrets;
mod system;
mod webhooks;

pub use auth::rfc3339_ms;
pub use error::{ApiError, ApiResult};
pub use webhooks::InProcessIntake;

use crate::access::throttle::SignInThrottle;
use crate::exec::Executor;
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::registry::FlowRegistry;
use crate::store::Actor;
use crate::store::{Cursor, DynStore};
use crate::wasm::Sandbox;
use axum::Router;
use std::net::IpAddr;
use std::sync::Arc;

/// Everything handlers share.
pub struct App {
    pub store: DynStore,
    pub flows: Arc<FlowRegistry>,
    pub sandbox: Arc<Sandbox>,
    pub queue: Arc<Queue>,
    pub executor: Arc<Executor>,
    pub secrets: Arc<crate::secrets::Secrets>,
    pub destinations: Arc<crate::stream::Destinations>,
    pub metrics: Arc<Metrics>,
    pub admin_token: String,
    pub max_body_bytes: usize,
    /// Most events one webhook batch may carry (`HOOKFLOW_MAX_BATCH_EVENTS`).
    pub max_batch_events: usize,
    /// When each client address last signed in with the admin token (audit throttling).
    pub sign_ins: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// True on PostgreSQL, where other processes may run (and finish) this process's runs.
    pub shared_database: bool,
    /// This process executes runs (`--role all|worker`): `/sync` then runs its run at once.
    pub runs_work: bool,
    /// How long console sessions last.
    pub sessions: SessionSettings,
    /// Failed sign-ins per email and per client address.
    pub sign_in_failures: SignInThrottle,
    /// The argon2 hash an unknown email's password is verified against (same work as a wrong
    /// password); built once at start-up, off the async runtime.
    pub decoy_hash: String,
    /// True when the public URL is https: session cookies are then `Secure`.
    pub public_https: bool,
    /// `HOOKFLOW_PUBLIC_URL`, for links the server hands out (invitations).
    pub public_url: Option<String>,
    /// The server's SMTP client (`HOOKFLOW_SMTP_URL`): invitations are e-mailed when set.
    pub mailer: Option<Arc<crate::mail::Mailer>>,
}

/// Idle and absolute lifetime of a console session.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    pub idle_ms: i64,
    pub max_ms: i64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle_ms: 12 * 3600 * 1000,
            max_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// Shared application state handed to handlers.
pub type AppState = Arc<App>;

/// Every `/v1` route with what it needs: the one table access is decided from.
pub fn routes() -> Vec<guard::Route> {
    [
        auth::routes(),
        people::routes(),
        flows::routes(),
        runs::routes(),
        plugins::routes(),
        catalog::routes(),
        replay::routes(),
        secrets::routes(),
        audit::routes(),
        destinations::routes(),
        webhooks::routes(),
        openapi::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `(method, path, need)` of every `/v1` route, for tests that walk them.
pub fn route_table() -> Vec<(axum::http::Method, String, crate::access::Need)> {
    guard::table(&routes())
}

/// The whole HTTP surface.
pub fn router(app: AppState) -> Router {
    Router::new()
        .nest(
            "/v1",
            guard::guarded(&app, routes()).layer(axum::middleware::map_response(
                error::problem_for_rejections,
            )),
        )
        .merge(system::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .with_state(app)
}

/// The routes of a `--role worker` process: health and metrics only, so it can be probed and
/// scraped but takes no webhooks or admin calls.
pub fn ops_router(app: AppState) -> Router {
    Router::new()
        .merge(system::routes())
        .fallback(|| async {
            ApiError::not_found("this process runs with --role worker: only /healthz and /metrics")
        })
        .with_state(app)
}

/// How long a sign-in from one address counts: the first authenticated request after that
/// is audited again as `user.signed.in`. The token is a bearer secret, so every request "signs
/// in"; recording each would drown the log.
const SIGN_IN_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// Who makes a request, for audit events: the guard's caller, or, on a public route, nobody
/// known but the client address.
pub struct RequestActor(pub Actor);

impl axum::extract::FromRequestParts<AppState> for RequestActor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(RequestActor(
            match parts.extensions.get::<guard::Caller>() {
                Some(caller) => caller.actor(),
                None => Actor {
                    user_id: None,
                    user_email: None,
                    ip: client_ip_of(parts, app),
                },
            },
        ))
    }
}

/// The client IP: the peer address, or, when the peer is a configured trusted proxy, the last
/// `X-Forwarded-For` hop that is not one.
pub fn client_ip_of(parts: &axum::http::request::Parts, app: &App) -> Option<String> {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    client_ip(peer, forwarded, &app.trusted_proxies).map(|ip| ip.to_string())
}

/// True when the request reached us over https as far as we can tell: the public URL is
/// https, or a trusted proxy says `X-Forwarded-Proto: https`.
pub fn served_over_https(parts: &axum::http::request::Parts, app: &App) -> bool {
    if app.public_https {
        return true;
    }
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    peer.is_some_and(|p| app.trusted_proxies.contains(&p))
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// Audits the first admin-token request per client address and window.
async fn record_sign_in(app: &AppState, ip: Option<String>) {
    let actor = Actor {
        user_id: Some("admin".into()),
        user_email: None,
        ip,
    };
    let key = actor.ip.clone().unwrap_or_default();
    let now = std::time::Instant::now();
    {
        let mut seen = app.sign_ins.lock().expect("sign-in map poisoned");
        if seen
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < SIGN_IN_WINDOW)
        {
            return;
        }
        seen.retain(|_, at| now.duration_since(*at) < SIGN_IN_WINDOW);
        seen.insert(key, now);
    }
    let Ok(scope) = app.store.default_scope().await else {
        return;
    };
    let data = serde_json::json!({"user": {"id": actor.user_id, "method": "admin-token"}, "success": true});
    let draft = crate::store::AuditDraft::new(
        &scope.platform_id,
        None,
        &actor,
        crate::store::AuditAction::UserSignedIn,
        data,
    );
    if let Err(error) = app.store.record_audit(vec![draft]).await {
        tracing::error!(%error, "recording an admin sign-in failed");
    }
}

/// The client's address: `X-Forwarded-For` is believed only from trusted proxies, and only up to
/// the first hop (from the right) that is not itself a trusted proxy.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded: Option<&str>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let mut current = peer?;
    let Some(forwarded) = forwarded else {
        return Some(current);
    };
    for hop in forwarded.rsplit(',') {
        if !trusted.contains(&current) {
            break;
        }
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => current = ip,
            Err(_) => break,
        }
    }
    Some(current)
}

/// Query parameters whose parse errors are answered as problem+json 400s naming the problem,
/// like every other error (axum's own `Query` answers plain text).
pub struct Params<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<AppState> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &AppState,
    ) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded_compat(query).map(Params)
    }
}

fn serde_urlencoded_compat<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::bad_request("query: malformed"))?,
    )
    .map(|q| q.0)
    .map_err(|e| {
        ApiError::bad_request(format!(
            "query: {}",
            e.body_text()
                .trim_start_matches("Failed to deserialize query string: ")
        ))
    })
}

/// The projects a list shows: those the caller sees (`None`: all), narrowed to `?projectId=`
/// when given (a project the caller cannot see is an empty list, not an error: lists never
/// confirm that a project exists).
pub fn narrow(visible: Option<Vec<String>>, project: Option<String>) -> Option<Vec<String>> {
    match (visible, project) {
        (None, None) => None,
        (Some(v), None) => Some(v),
        (None, Some(p)) => Some(vec![p]),
        (Some(v), Some(p)) => Some(v.into_iter().filter(|x| *x == p).collect()),
    }
}

/// A JSON request body, or a 400 naming what serde found wrong (bodies that may hold secrets use
/// their own message that never echoes a value).
pub fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("body: {e}")))
}

/// Normalises an RFC 3339 time to the stored form (UTC, milliseconds) so text comparison
/// orders correctly; a 400 naming `name` otherwise.
pub fn rfc3339(name: &str, value: &str) -> ApiResult<String> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .map_err(|_| ApiError::bad_request(format!("{name}: not an RFC 3339 time: {value:?}")))
}

/// `limit` and `cursor` query parameters shared by list endpoints.
#[derive(Debug, serde::Deserialize)]
pub struct PageParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageParams {
    /// Validated limit (default 50, 1..=500) and decoded cursor.
    pub fn parse(&self) -> ApiResult<(u32, Option<Cursor>)> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit: must be between 1 and 500, got {limit}"
            )));
        }
        let cursor =
            match &self.cursor {
                None => None,
                Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
                    ApiError::bad_request("cursor: not a cursor this server issued")
                })?),
            };
        Ok((limit, cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::client_ip;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = "10.0.0.1".parse().unwrap();
        let peer = Some(proxy);
        assert_eq!(
            client_ip(peer, Some("203.0.113.7"), &[proxy]),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(client_ip(peer, Some("203.0.113.7"), &[]), Some(proxy));
        // A client cannot smuggle an address past the first untrusted hop.
        assert_eq!(
            client_ip(peer, Some("1.1.1.1, 203.0.113.7"), &[proxy]),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(client_ip(None, None, &[]), None);
    }
}
