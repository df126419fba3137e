//! `/v1/auth`: sign in (a server-side session behind an HttpOnly, SameSite=Strict cookie),
//! sign out, who am I, and accepting a project invitation.
//!
//! Sign-in answers the same 401 for an unknown email, a wrong password and a disabled account,
//! after the same argon2 work (an unknown email is checked against a decoy hash), so neither
//! the answer nor its timing tells whether an account exists. Failures are throttled per email
//! and per client address, and every attempt is a `user.signed.in` audit event with
//! `data.success`.

use super::guard::{self, CSRF_HEADER, Caller, Route, SESSION_COOKIE};
use super::openapi::Object;
use super::{ApiError, ApiResult, AppState, client_ip_of, served_over_https};
use crate::access::{Need, Via, password, token};
use crate::store::access::Invitee;
use crate::store::{Actor, AuditAction, AuditDraft, SessionRecord, StoreError, epoch_ms};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

pub fn routes() -> Vec<Route> {
    vec![
        guard::post("/auth/sign-in", Need::Public, sign_in)
            .doc("Signs in: a session cookie and the CSRF token for changes")
            .body::<SignIn>()
            .returns::<Object>(StatusCode::OK),
        guard::post("/auth/sign-out", Need::SignedIn, sign_out)
            .doc("Ends the console session")
            .empty(StatusCode::NO_CONTENT),
        guard::get("/auth/me", Need::SignedIn, me)
            .doc("Who the credential belongs to, and their roles")
            .returns::<Object>(StatusCode::OK),
        guard::post("/auth/accept-invitation", Need::Public, accept_invitation)
            .doc("Accepts a project invitation (creating the account if needed)")
            .body::<Acceptance>()
            .returns::<Object>(StatusCode::OK),
    ]
}

/// Longest email accepted (RFC 5321's path limit).
const MAX_EMAIL: usize = 320;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SignIn {
    email: String,
    password: String,
}

/// Why a sign-in failed, as recorded in its audit event (never in the answer).
#[derive(Clone, Copy)]
enum Failure {
    UnknownEmail,
    WrongPassword,
    Disabled,
    Throttled,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::UnknownEmail => "unknown-email",
            Failure::WrongPassword => "wrong-password",
            Failure::Disabled => "disabled",
            Failure::Throttled => "throttled",
        }
    }
}

/// Runs argon2 off the async runtime.
async fn verify_password(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || password::verify(&password, &phc))
        .await
        .unwrap_or(false)
}

/// Checks a new password's strength (a 400 naming `password`) and hashes it off the runtime.
pub(super) async fn new_password_hash(password: String) -> ApiResult<String> {
    password::check_strength(&password)
        .map_err(|e| ApiError::bad_request(format!("password: {e}")))?;
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "hashing failed"))
}

/// Records one sign-in attempt.
async fn audit_attempt(app: &AppState, actor: Actor, success: bool, failure: Option<Failure>) {
    let data = json!({
        "user": {"id": actor.user_id, "email": actor.user_email, "method": "password"},
        "success": success,
        "reason": failure.map(Failure::as_str),
    });
    let draft = AuditDraft::new("default", None, &actor, AuditAction::UserSignedIn, data);
    if let Err(error) = app.store.record_audit(vec![draft]).await {
        tracing::error!(%error, "recording a sign-in attempt failed");
    }
}

fn wrong() -> ApiError {
    ApiError::unauthorized("email or password is wrong")
}

async fn sign_in(State(app): State<AppState>, parts: Parts, body: axum::body::Bytes) -> Response {
    match try_sign_in(&app, &parts, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn try_sign_in(app: &AppState, parts: &Parts, body: &[u8]) -> ApiResult<Response> {
    // The error never echoes the body: it holds a password.
    let request: SignIn = serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_request(r#"body: expected {"email": "...", "password": "..."}"#)
    })?;
    let email = request.email.trim().to_lowercase();
    if email.is_empty() || email.len() > MAX_EMAIL {
        return Err(ApiError::bad_request(format!(
            "email: must be 1 to {MAX_EMAIL} characters"
        )));
    }
    let ip = client_ip_of(parts, app);
    let ip_key = ip.clone().unwrap_or_default();
    let mut actor = Actor {
        user_id: None,
        user_email: Some(email.clone()),
        ip: ip.clone(),
    };
    // The attempt is counted before the password is checked, in one step with the limit
    // check: concurrent guesses cannot all get past a limit none of them is counted in yet.
    let attempt = match app.sign_in_failures.attempt(&email, &ip_key) {
        Ok(attempt) => attempt,
        Err(wait) => {
            audit_attempt(app, actor, false, Some(Failure::Throttled)).await;
            return Err(too_many(wait));
        }
    };
    let found = app.store.user_for_sign_in(&email).await?;
    let phc = match &found {
        Some((_, phc)) => phc.clone(),
        None => app.decoy_hash.clone(),
    };
    let matches = verify_password(request.password, phc).await;
    let user = match found {
        None => Err(Failure::UnknownEmail),
        Some(_) if !matches => Err(Failure::WrongPassword),
        Some((user, _)) if user.disabled => Err(Failure::Disabled),
        Some((user, _)) => Ok(user),
    };
    let user = match user {
        Ok(user) => user,
        Err(failure) => {
            attempt.failed();
            audit_attempt(app, actor, false, Some(failure)).await;
            return Err(wrong());
        }
    };
    attempt.succeeded();
    actor.user_id = Some(user.id.clone());
    let cookie = token::random();
    let now = epoch_ms();
    let session = SessionRecord {
        id: token::digest(&cookie),
        user_id: user.id.clone(),
        csrf: token::random(),
        ip: ip.clone(),
        created_ms: now,
        last_seen_ms: now,
        expires_ms: now + app.sessions.max_ms,
    };
    app.store.create_session(&session).await?;
    audit_attempt(app, actor, true, None).await;
    let projects = app.store.memberships(&user.id).await?;
    let body = json!({
        "user": user,
        "csrfToken": session.csrf,
        "csrfHeader": CSRF_HEADER,
        "expiresAt": rfc3339_ms(session.expires_ms),
        "projects": projects.iter().map(|(id, role)| json!({"id": id, "role": role})).collect::<Vec<_>>(),
    });
    let mut response = (StatusCode::OK, Json(body)).into_response();
    let set = session_cookie(
        &cookie,
        app.sessions.max_ms / 1000,
        served_over_https(parts, app),
    );
    response.headers_mut().insert(header::SET_COOKIE, set);
    Ok(response)
}

/// The session cookie: HttpOnly (scripts cannot read it), SameSite=Strict (no cross-site
/// request carries it), Secure when the request came over https.
fn session_cookie(value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .expect("cookie text is ASCII")
}

fn too_many(wait: Duration) -> ApiError {
    let secs = wait.as_secs().max(1);
    let mut error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed sign-ins; try again in {secs} s"),
    );
    error.retry_after = Some(secs);
    error
}

async fn sign_out(
    State(app): State<AppState>,
    caller: Caller,
    parts: Parts,
) -> ApiResult<Response> {
    let Via::Session { id, .. } = &caller.principal.via else {
        return Err(ApiError::bad_request(
            "sign-out ends a console session; revoke an API key instead",
        ));
    };
    if let Some(user) = app.store.get_user(&caller.principal.user_id).await? {
        app.store.delete_session(&caller.actor(), id, &user).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie("", 0, served_over_https(&parts, &app)),
    );
    Ok(response)
}

async fn me(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let p = &caller.principal;
    let user = match p.via {
        Via::Session { .. } => app.store.get_user(&p.user_id).await?.map(|u| json!(u)),
        _ => None,
    };
    Ok(Json(json!({
        "id": p.user_id,
        "email": p.email,
        "via": p.via.as_str(),
        "platformRole": p.platform_role,
        "projects": p.projects.iter().map(|(id, role)| json!({"id": id, "role": role})).collect::<Vec<_>>(),
        "user": user,
    })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Acceptance {
    token: String,
    password: String,
    name: Option<String>,
}

/// Accepts an invitation: creates the account (or, for an email that has one, proves its
/// password) and adds the membership. The token works once.
async fn accept_invitation(
    State(app): State<AppState>,
    parts: Parts,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let request: Acceptance = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad_request(
            r#"body: expected {"token": "...", "password": "...", "name"?: "..."}"#,
        )
    })?;
    let gone = || ApiError::not_found("invitation: unknown, already used or expired");
    let hash = token::digest(&request.token);
    let invitation = app.store.open_invitation(&hash).await?.ok_or_else(gone)?;
    let invitee = match app.store.user_for_sign_in(&invitation.email).await? {
        Some((_, phc)) => {
            if !verify_password(request.password, phc).await {
                return Err(ApiError::unauthorized(
                    "password: an account with this email exists; give its password",
                ));
            }
            Invitee::Existing
        }
        None => {
            let name = request
                .name
                .unwrap_or_else(|| invitation.email.split('@').next().unwrap_or("").into());
            Invitee::New {
                password_hash: new_password_hash(request.password).await?,
                name,
            }
        }
    };
    let ip = client_ip_of(&parts, &app);
    let (user, invitation) = app
        .store
        .accept_invitation(&hash, ip, invitee)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => gone(),
            other => other.into(),
        })?;
    Ok(Json(json!({
        "user": user,
        "project": {"id": invitation.project_id},
        "role": invitation.role,
    })))
}

/// Epoch milliseconds as the API writes times.
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
