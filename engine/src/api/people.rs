//! People and credentials: `/v1/users` (platform admins), `/v1/projects` with their members,
//! invitations and API keys, and platform-wide keys under `/v1/platform/api-keys`. A key is shown
//! once, in the answer that creates it; afterwards only its prefix.

use super::auth::{new_password_hash, rfc3339_ms};
use super::guard::{self, Caller, Route};
use super::openapi::Object;
use super::{ApiError, ApiResult, AppState};
use crate::access::{Need, Target, token};
use crate::store::{
    ApiKeyRecord, InvitationRecord, MemberRecord, NewApiKey, NewUser, ProjectRecord, Role,
    UserChange, UserRecord, epoch_ms, new_id, now_text,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Vec<Route> {
    let viewer = Need::Project(Role::Viewer, Target::PathProject);
    let admin = Need::Project(Role::Admin, Target::PathProject);
    vec![
        guard::get("/users", Need::Platform, list_users)
            .doc("Lists the people of the platform")
            .page::<UserRecord>(),
        guard::post("/users", Need::Platform, create_user)
            .doc("Creates a person (and optionally a first membership)")
            .body::<NewUserBody>()
            .returns::<UserRecord>(StatusCode::CREATED),
        guard::get("/users/{id}", Need::Platform, read_user)
            .doc("One person with their project roles")
            .returns::<UserRecord>(StatusCode::OK),
        guard::patch("/users/{id}", Need::Platform, update_user)
            .doc("Renames, disables, resets the password of or changes the platform role of a person")
            .body::<UserPatch>()
            .returns::<UserRecord>(StatusCode::OK),
        guard::get("/projects", Need::SignedIn, list_projects)
            .doc("Lists the projects the caller sees, with their role in each")
            .page::<Object>(),
        guard::post("/projects", Need::Platform, create_project)
            .doc("Creates a project")
            .body::<NewProject>()
            .returns::<Object>(StatusCode::CREATED),
        guard::get("/projects/{id}", viewer, read_project)
            .doc("One project, with the caller's role in it")
            .returns::<Object>(StatusCode::OK),
        guard::get("/projects/{id}/members", viewer, list_members)
            .doc("Lists the members of a project")
            .page::<MemberRecord>(),
        guard::post("/projects/{id}/members", admin, put_member)
            .doc("Adds a person to the project (201) or changes their role (200)")
            .body::<MemberBody>()
            .returns::<Object>(StatusCode::OK)
            .returns::<Object>(StatusCode::CREATED),
        guard::delete("/projects/{id}/members/{user_id}", admin, remove_member)
            .doc("Removes a person from the project")
            .empty(StatusCode::NO_CONTENT),
        guard::get("/projects/{id}/invitations", admin, list_invitations)
            .doc("Lists the open invitations of a project")
            .page::<Object>(),
        guard::post("/projects/{id}/invitations", admin, invite)
            .doc("Invites an email to the project: the one-time link token is shown only here")
            .body::<InvitationBody>()
            .returns::<Object>(StatusCode::CREATED),
        guard::delete(
            "/projects/{id}/invitations/{invitation_id}",
            admin,
            revoke_invitation,
        )
        .doc("Revokes an invitation")
        .empty(StatusCode::NO_CONTENT),
        guard::get("/projects/{id}/api-keys", admin, list_project_keys)
            .doc("Lists the API keys of a project (prefixes only)")
            .page::<Object>(),
        guard::post("/projects/{id}/api-keys", admin, create_project_key)
            .doc("Creates a project API key: the key is shown only here")
            .body::<KeyBody>()
            .returns::<Object>(StatusCode::CREATED),
        guard::delete(
            "/projects/{id}/api-keys/{key_id}",
            admin,
            revoke_project_key,
        )
        .doc("Revokes a project API key")
        .empty(StatusCode::NO_CONTENT),
        guard::get("/platform/api-keys", Need::Platform, list_platform_keys)
            .doc("Lists the platform-wide API keys (prefixes only)")
            .page::<Object>(),
        guard::post("/platform/api-keys", Need::Platform, create_platform_key)
            .doc("Creates a platform-wide API key: the key is shown only here")
            .body::<KeyBody>()
            .returns::<Object>(StatusCode::CREATED),
        guard::delete(
            "/platform/api-keys/{key_id}",
            Need::Platform,
            revoke_platform_key,
        )
        .doc("Revokes a platform-wide API key")
        .empty(StatusCode::NO_CONTENT),
    ]
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8], expected: &str) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        // serde names the field; the message never echoes a value (passwords travel here).
        let what = e.to_string();
        let what = what.split(" at line").next().unwrap_or("malformed");
        ApiError::bad_request(format!("body: {what} (expected {expected})"))
    })
}

fn role(text: &str, platform: bool) -> ApiResult<Role> {
    let role: Role = text
        .parse()
        .map_err(|e: String| ApiError::bad_request(format!("role: {e}")))?;
    match (platform, role.is_platform()) {
        (true, false) => Err(ApiError::bad_request(format!(
            "role: {role} is a project role; platform keys and people take platform-admin or auditor"
        ))),
        (false, true) => Err(ApiError::bad_request(format!(
            "role: {role} is a platform role; project roles are admin, editor, operator, viewer"
        ))),
        _ => Ok(role),
    }
}

fn created(location: String, body: Value) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

fn list(data: Value) -> Json<Value> {
    Json(json!({ "data": data, "next": null, "previous": null }))
}

fn check_email(email: &str) -> ApiResult<String> {
    let email = email.trim().to_lowercase();
    let plausible = email.len() <= 320
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.contains(char::is_whitespace);
    if plausible {
        Ok(email)
    } else {
        Err(ApiError::bad_request(format!(
            "email: not an email address: {email:?}"
        )))
    }
}

fn check_name(field: &str, name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_request(format!(
            "{field}: must be 1 to 200 characters"
        )));
    }
    Ok(name.to_string())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewUserBody {
    email: String,
    password: String,
    name: Option<String>,
    platform_role: Option<String>,
    /// Optional first membership: `{projectId, role}`.
    project_id: Option<String>,
    role: Option<String>,
}

async fn create_user(
    State(app): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<Response> {
    let request: NewUserBody = body(&bytes, r#"{"email", "password", "name"?, "platformRole"?}"#)?;
    let email = check_email(&request.email)?;
    let name = match &request.name {
        Some(n) => check_name("name", n)?,
        None => email.split('@').next().unwrap_or_default().to_string(),
    };
    let platform_role = request
        .platform_role
        .as_deref()
        .map(|r| role(r, true))
        .transpose()?;
    let membership = match (&request.project_id, &request.role) {
        (Some(project), Some(r)) => Some((project.clone(), role(r, false)?)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "projectId: give projectId and role together",
            ));
        }
    };
    if let Some((project, _)) = &membership
        && app.store.get_project(project).await?.is_none()
    {
        return Err(ApiError::not_found(format!("project {project} not found")));
    }
    let new = NewUser {
        email,
        name,
        password_hash: new_password_hash(request.password).await?,
        platform_role,
    };
    let actor = caller.actor();
    let user = app.store.create_user(&actor, &new, "admin").await?;
    if let Some((project, role)) = membership {
        app.store
            .put_member(&actor, &project, &user.id, role)
            .await?;
    }
    Ok(created(format!("/v1/users/{}", user.id), json!(user)))
}

async fn list_users(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(list(json!(app.store.list_users().await?)))
}

async fn read_user(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let user = app
        .store
        .get_user(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    let memberships = app.store.memberships(&id).await?;
    let mut body = json!(user);
    body["projects"] = json!(
        memberships
            .iter()
            .map(|(p, r)| json!({"id": p, "role": r}))
            .collect::<Vec<_>>()
    );
    Ok(Json(body))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserPatch {
    name: Option<String>,
    password: Option<String>,
    disabled: Option<bool>,
    /// `null` removes the platform role.
    #[serde(default, deserialize_with = "double_option::deserialize")]
    #[schemars(with = "Option<String>")]
    platform_role: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

async fn update_user(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let patch: UserPatch = body(
        &bytes,
        r#"{"name"?, "password"?, "disabled"?, "platformRole"?}"#,
    )?;
    let change = UserChange {
        name: patch
            .name
            .as_deref()
            .map(|n| check_name("name", n))
            .transpose()?,
        password_hash: match patch.password {
            Some(p) => Some(new_password_hash(p).await?),
            None => None,
        },
        platform_role: patch
            .platform_role
            .map(|r| r.as_deref().map(|r| role(r, true)).transpose())
            .transpose()?,
        disabled: patch.disabled,
    };
    let user = app.store.update_user(&caller.actor(), &id, &change).await?;
    Ok(Json(json!(user)))
}

fn project_view(p: &ProjectRecord, role: Option<Role>) -> Value {
    let mut v = json!(p);
    v["role"] = json!(role);
    v
}

async fn list_projects(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let p = &caller.principal;
    let only = match p.platform_role {
        Some(_) => None,
        None => Some(p.projects.iter().map(|(id, _)| id.clone()).collect()),
    };
    let projects = app.store.list_projects(only).await?;
    Ok(list(json!(
        projects
            .iter()
            .map(|project| project_view(project, p.role_in(&project.id)))
            .collect::<Vec<_>>()
    )))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewProject {
    name: String,
}

async fn create_project(
    State(app): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<Response> {
    let request: NewProject = body(&bytes, r#"{"name"}"#)?;
    let name = check_name("name", &request.name)?;
    let project = app.store.create_project(&caller.actor(), &name).await?;
    Ok(created(
        format!("/v1/projects/{}", project.id),
        project_view(&project, Some(Role::Admin)),
    ))
}

/// The project of a `/projects/{id}/...` route (the guard resolved and checked it).
async fn this_project(app: &AppState, caller: &Caller) -> ApiResult<ProjectRecord> {
    let id = &caller.project()?.project_id;
    app.store
        .get_project(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("project {id} not found")))
}

async fn read_project(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let project = this_project(&app, &caller).await?;
    let role = caller.principal.role_in(&project.id);
    Ok(Json(project_view(&project, role)))
}

async fn list_members(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let project = this_project(&app, &caller).await?;
    Ok(list(json!(app.store.list_members(&project.id).await?)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MemberBody {
    user_id: Option<String>,
    email: Option<String>,
    role: String,
}

/// Adds a person (by id or email) to the project, or changes their role.
async fn put_member(
    State(app): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<Response> {
    let request: MemberBody = body(&bytes, r#"{"userId" or "email", "role"}"#)?;
    let role = role(&request.role, false)?;
    let project = this_project(&app, &caller).await?;
    let user = match (request.user_id, request.email) {
        (Some(id), None) => app.store.get_user(&id).await?,
        (None, Some(email)) => app
            .store
            .user_for_sign_in(&check_email(&email)?)
            .await?
            .map(|(u, _)| u),
        _ => {
            return Err(ApiError::bad_request(
                "userId: give exactly one of \"userId\" or \"email\"",
            ));
        }
    }
    .ok_or_else(|| {
        ApiError::not_found("user not found (invite people without an account instead)")
    })?;
    let added = app
        .store
        .put_member(&caller.actor(), &project.id, &user.id, role)
        .await?;
    let member = json!({"projectId": project.id, "userId": user.id, "email": user.email, "name": user.name, "role": role});
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(member)).into_response())
}

async fn remove_member(
    State(app): State<AppState>,
    caller: Caller,
    Path((_, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project = this_project(&app, &caller).await?;
    if app
        .store
        .remove_member(&caller.actor(), &project.id, &user_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "user {user_id} is not a member of project {}",
            project.id
        )))
    }
}

/// How long an invitation link stays valid unless asked otherwise.
const INVITATION_DAYS: i64 = 7;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InvitationBody {
    email: String,
    role: String,
    expires_in_days: Option<i64>,
}

fn invitation_view(i: &InvitationRecord) -> Value {
    json!({
        "id": i.id,
        "projectId": i.project_id,
        "email": i.email,
        "role": i.role,
        "expiresAt": rfc3339_ms(i.expires_ms),
        "created": i.created,
        "createdBy": i.created_by,
    })
}

/// Creates a one-time invitation link token, shown only here.
async fn invite(
    State(app): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<Response> {
    let request: InvitationBody = body(&bytes, r#"{"email", "role", "expiresInDays"?}"#)?;
    let project = this_project(&app, &caller).await?;
    let days = request.expires_in_days.unwrap_or(INVITATION_DAYS);
    if !(1..=30).contains(&days) {
        return Err(ApiError::bad_request(
            "expiresInDays: must be between 1 and 30",
        ));
    }
    let secret = token::new_invitation();
    let record = InvitationRecord {
        id: new_id(),
        project_id: project.id.clone(),
        email: check_email(&request.email)?,
        role: role(&request.role, false)?,
        expires_ms: epoch_ms() + days * 24 * 3600 * 1000,
        accepted: None,
        created: now_text(),
        created_by: Some(caller.principal.user_id.clone()),
    };
    app.store
        .create_invitation(&caller.actor(), &record, &token::digest(&secret))
        .await?;
    let mut view = invitation_view(&record);
    view["emailed"] = json!(false);
    if let Some(mailer) = &app.mailer {
        match mail_invitation(mailer, &project, &record, &accept_url(&app, &secret)).await {
            Ok(()) => view["emailed"] = json!(true),
            Err(error) => view["emailError"] = json!(error),
        }
    }
    view["acceptUrl"] = json!(accept_url(&app, &secret));
    view["token"] = json!(secret);
    Ok(created(
        format!("/v1/projects/{}/invitations/{}", project.id, record.id),
        view,
    ))
}

/// The console page that accepts an invitation: absolute when the server knows its public URL.
fn accept_url(app: &AppState, secret: &str) -> String {
    let path = format!("/accept-invitation?token={secret}");
    match &app.public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path,
    }
}

/// Sends the invitation link to its address through the server's SMTP server (only to it).
async fn mail_invitation(
    mailer: &crate::mail::Mailer,
    project: &ProjectRecord,
    invitation: &InvitationRecord,
    link: &str,
) -> Result<(), String> {
    let only = crate::flow::recipients::RecipientPattern::parse(&invitation.email)?;
    let request = crate::mail::MailRequest {
        to: vec![invitation.email.clone()],
        subject: format!("You are invited to the hookflow project {}", project.name),
        text: format!(
            "You were invited to the hookflow project {} as {}.\n\n\
             Open this link to choose your password and join (valid once, until {}):\n\n{link}\n",
            project.name,
            invitation.role,
            rfc3339_ms(invitation.expires_ms).unwrap_or_default()
        ),
        ..Default::default()
    };
    mailer
        .send(&request, &[only])
        .await
        .map(|_| ())
        .map_err(|e| e.message)
}

async fn list_invitations(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let project = this_project(&app, &caller).await?;
    let open = app.store.list_invitations(&project.id).await?;
    Ok(list(json!(
        open.iter().map(invitation_view).collect::<Vec<_>>()
    )))
}

async fn revoke_invitation(
    State(app): State<AppState>,
    caller: Caller,
    Path((_, invitation_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project = this_project(&app, &caller).await?;
    if app
        .store
        .revoke_invitation(&caller.actor(), &project.id, &invitation_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "invitation {invitation_id} not found"
        )))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyBody {
    name: String,
    role: String,
    expires_at: Option<String>,
}

/// A key as lists show it: never the key, only its prefix.
fn key_view(k: &ApiKeyRecord) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "role": k.role,
        "prefix": k.prefix,
        "projectId": k.project_id,
        "expiresAt": k.expires_ms.and_then(rfc3339_ms),
        "lastUsedAt": k.last_used_ms.and_then(rfc3339_ms),
        "revokedAt": k.revoked,
        "created": k.created,
        "createdBy": k.created_by,
    })
}

async fn create_key(
    app: &AppState,
    caller: &Caller,
    project_id: Option<String>,
    bytes: &[u8],
) -> ApiResult<Response> {
    let request: KeyBody = body(bytes, r#"{"name", "role", "expiresAt"?}"#)?;
    let expires_ms = match &request.expires_at {
        None => None,
        Some(text) => {
            let at = chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    ApiError::bad_request(format!("expiresAt: not an RFC 3339 time: {text:?}"))
                })?
                .timestamp_millis();
            if at <= epoch_ms() {
                return Err(ApiError::bad_request("expiresAt: must be in the future"));
            }
            Some(at)
        }
    };
    let secret = token::new_api_key();
    let new = NewApiKey {
        project_id: project_id.clone(),
        name: check_name("name", &request.name)?,
        role: role(&request.role, project_id.is_none())?,
        prefix: token::shown_prefix(&secret),
        hash: token::digest(&secret),
        expires_ms,
    };
    let record = app.store.create_api_key(&caller.actor(), &new).await?;
    let mut view = key_view(&record);
    view["key"] = json!(secret);
    let location = match &project_id {
        Some(p) => format!("/v1/projects/{p}/api-keys/{}", record.id),
        None => format!("/v1/platform/api-keys/{}", record.id),
    };
    Ok(created(location, view))
}

async fn list_keys(app: &AppState, project_id: Option<&str>) -> ApiResult<Json<Value>> {
    let keys = app.store.list_api_keys(project_id).await?;
    Ok(list(json!(keys.iter().map(key_view).collect::<Vec<_>>())))
}

async fn revoke_key(
    app: &AppState,
    caller: &Caller,
    project_id: Option<&str>,
    key_id: &str,
) -> ApiResult<StatusCode> {
    if app
        .store
        .revoke_api_key(&caller.actor(), project_id, key_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("API key {key_id} not found")))
    }
}

async fn create_project_key(
    State(app): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<Response> {
    let project = this_project(&app, &caller).await?;
    create_key(&app, &caller, Some(project.id), &bytes).await
}

async fn list_project_keys(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let project = this_project(&app, &caller).await?;
    list_keys(&app, Some(&project.id)).await
}

async fn revoke_project_key(
    State(app): State<AppState>,
    caller: Caller,
    Path((_, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project = this_project(&app, &caller).await?;
    revoke_key(&app, &caller, Some(&project.id), &key_id).await
}

async fn create_platform_key(
    State(app): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<Response> {
    create_key(&app, &caller, None, &bytes).await
}

async fn list_platform_keys(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    list_keys(&app, None).await
}

async fn revoke_platform_key(
    State(app): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    revoke_key(&app, &caller, None, &key_id).await
}
