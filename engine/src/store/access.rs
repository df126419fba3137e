//! People and credentials: users, projects and their members, server-side sessions, API keys
//! and invitations. Written once for both backends; every change appends its audit event in the
//! same transaction. Only digests of credentials reach this module (the cookie's, the key's, the
//! invitation token's) and the password's argon2id hash, which no read hands back except
//! [`Store::user_for_sign_in`].

use super::audit::{self, AuditDraft};
use super::rows::in_list;
use super::sql::{Conn, Row, params};
use super::{
    Actor, ApiKeyRecord, AuditAction, InvitationRecord, MemberRecord, NewApiKey, NewUser, Owned,
    Owner, ProjectRecord, Role, SessionRecord, Store, StoreError, StoreResult, UserChange,
    UserRecord, epoch_ms, new_id, now_text,
};
use serde_json::{Value, json};

/// The only platform today; every person and project belongs to it.
const PLATFORM: &str = "default";

fn user(row: &Row) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: row.text("id")?,
        platform_id: row.text("platform_id")?,
        email: row.text("email")?,
        name: row.text("name")?,
        platform_role: row
            .opt_text("platform_role")?
            .map(|r| r.parse())
            .transpose()
            .map_err(StoreError::Corrupt)?,
        disabled: row.bool("disabled")?,
        created: row.text("created")?,
        updated: row.text("updated")?,
    })
}

fn project(row: &Row) -> StoreResult<ProjectRecord> {
    Ok(ProjectRecord {
        id: row.text("id")?,
        platform_id: row.text("platform_id")?,
        name: row.text("name")?,
        created: row.text("created")?,
    })
}

fn member(row: &Row) -> StoreResult<MemberRecord> {
    Ok(MemberRecord {
        project_id: row.text("project_id")?,
        user_id: row.text("user_id")?,
        email: row.text("email")?,
        name: row.text("name")?,
        role: row.parse("role")?,
        created: row.text("created")?,
    })
}

fn api_key(row: &Row) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.text("id")?,
        platform_id: row.text("platform_id")?,
        project_id: row.opt_text("project_id")?,
        name: row.text("name")?,
        role: row.parse("role")?,
        prefix: row.text("prefix")?,
        expires_ms: row.opt_int("expires_ms")?,
        last_used_ms: row.opt_int("last_used_ms")?,
        revoked: row.opt_text("revoked")?,
        created: row.text("created")?,
        created_by: row.opt_text("created_by")?,
    })
}

fn invitation(row: &Row) -> StoreResult<InvitationRecord> {
    Ok(InvitationRecord {
        id: row.text("id")?,
        project_id: row.text("project_id")?,
        email: row.text("email")?,
        role: row.parse("role")?,
        expires_ms: row.int("expires_ms")?,
        accepted: row.opt_text("accepted")?,
        created: row.text("created")?,
        created_by: row.opt_text("created_by")?,
    })
}

fn session(row: &Row) -> StoreResult<SessionRecord> {
    Ok(SessionRecord {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        csrf: row.text("csrf")?,
        ip: row.opt_text("ip")?,
        created_ms: row.int("created_ms")?,
        last_seen_ms: row.int("last_seen_ms")?,
        expires_ms: row.int("expires_ms")?,
    })
}

/// What an audit event says about a person: never the password hash.
fn user_data(u: &UserRecord) -> Value {
    json!({"user": {"id": u.id, "email": u.email, "name": u.name, "platformRole": u.platform_role, "disabled": u.disabled}})
}

/// A membership in the shape of Activepieces' `projectRole` (name and permissions), so the
/// seeds' detections ("a role granting `WRITE_PROJECT_MEMBER`") run on hookflow's own log.
fn member_data(project_id: &str, user: &UserRecord, role: Role) -> Value {
    json!({
        "project": {"id": project_id},
        "member": {"userId": user.id, "email": user.email},
        "projectRole": {"name": role.as_str(), "permissions": role.permissions()},
    })
}

fn key_data(k: &ApiKeyRecord) -> Value {
    json!({"apiKey": {"id": k.id, "name": k.name, "role": k.role, "prefix": k.prefix, "projectId": k.project_id}})
}

async fn append(
    c: &mut dyn Conn,
    project: Option<&str>,
    actor: &Actor,
    action: AuditAction,
    data: Value,
) -> StoreResult<()> {
    audit::append(
        c,
        &[AuditDraft::new(PLATFORM, project, actor, action, data)],
    )
    .await
}

fn conflict_on_unique(error: StoreError, message: String) -> StoreError {
    if error.is_data_error() {
        StoreError::Conflict(message)
    } else {
        error
    }
}

pub async fn create_user(
    c: &mut dyn Conn,
    actor: &Actor,
    new: &NewUser,
    how: &str,
) -> StoreResult<UserRecord> {
    let now = now_text();
    let email = new.email.trim().to_lowercase();
    let taken = c
        .query_opt("SELECT id FROM users WHERE email = ?", params![&email])
        .await?;
    if taken.is_some() {
        return Err(StoreError::Conflict(format!(
            "email: a user with email {email} already exists"
        )));
    }
    let record = UserRecord {
        id: new_id(),
        platform_id: PLATFORM.into(),
        email,
        name: new.name.clone(),
        platform_role: new.platform_role,
        disabled: false,
        created: now.clone(),
        updated: now,
    };
    c.execute(
        "INSERT INTO users (id, platform_id, email, name, password_hash, platform_role, disabled, created, updated) \
         VALUES (?, ?, ?, ?, ?, ?, FALSE, ?, ?)",
        params![
            &record.id,
            &record.platform_id,
            &record.email,
            &record.name,
            &new.password_hash,
            record.platform_role.map(|r| r.as_str()),
            &record.created,
            &record.updated
        ],
    )
    .await
    .map_err(|e| conflict_on_unique(e, format!("email: {} is taken", record.email)))?;
    let mut data = user_data(&record);
    data["method"] = json!(how);
    append(c, None, actor, AuditAction::UserSignedUp, data).await?;
    Ok(record)
}

pub async fn list_users(c: &mut dyn Conn) -> StoreResult<Vec<UserRecord>> {
    c.query("SELECT * FROM users ORDER BY email", params![])
        .await?
        .iter()
        .map(user)
        .collect()
}

pub async fn get_user(c: &mut dyn Conn, id: &str) -> StoreResult<Option<UserRecord>> {
    c.query_opt("SELECT * FROM users WHERE id = ?", params![id])
        .await?
        .map(|r| user(&r))
        .transpose()
}

/// The person with `email` and their password hash, for checking a sign-in.
pub async fn user_for_sign_in(
    c: &mut dyn Conn,
    email: &str,
) -> StoreResult<Option<(UserRecord, String)>> {
    c.query_opt(
        "SELECT * FROM users WHERE email = ?",
        params![email.trim().to_lowercase()],
    )
    .await?
    .map(|r| Ok((user(&r)?, r.text("password_hash")?)))
    .transpose()
}

/// Applies `change`; disabling a person or changing their password also ends their sessions.
pub async fn update_user(
    c: &mut dyn Conn,
    actor: &Actor,
    id: &str,
    change: &UserChange,
) -> StoreResult<UserRecord> {
    let mut current = get_user(c, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
    if let Some(name) = &change.name {
        current.name = name.clone();
    }
    if let Some(role) = change.platform_role {
        current.platform_role = role;
    }
    if let Some(disabled) = change.disabled {
        current.disabled = disabled;
    }
    current.updated = now_text();
    c.execute(
        "UPDATE users SET name = ?, platform_role = ?, disabled = ?, updated = ? WHERE id = ?",
        params![
            &current.name,
            current.platform_role.map(|r| r.as_str()),
            current.disabled,
            &current.updated,
            id
        ],
    )
    .await?;
    if let Some(hash) = &change.password_hash {
        c.execute(
            "UPDATE users SET password_hash = ? WHERE id = ?",
            params![hash, id],
        )
        .await?;
    }
    if current.disabled || change.password_hash.is_some() {
        c.execute("DELETE FROM sessions WHERE user_id = ?", params![id])
            .await?;
    }
    let mut data = user_data(&current);
    data["passwordChanged"] = json!(change.password_hash.is_some());
    append(c, None, actor, AuditAction::UserUpdated, data).await?;
    if change.password_hash.is_some() {
        // Its own event, in Activepieces' name, so a detection can watch for it alone.
        let data = user_data(&current);
        append(c, None, actor, AuditAction::UserPasswordReset, data).await?;
    }
    Ok(current)
}

pub async fn create_project(
    c: &mut dyn Conn,
    actor: &Actor,
    name: &str,
) -> StoreResult<ProjectRecord> {
    let record = ProjectRecord {
        id: new_id(),
        platform_id: PLATFORM.into(),
        name: name.to_string(),
        created: now_text(),
    };
    c.execute(
        "INSERT INTO projects (id, platform_id, name, created) VALUES (?, ?, ?, ?)",
        params![
            &record.id,
            &record.platform_id,
            &record.name,
            &record.created
        ],
    )
    .await?;
    let data = json!({"project": {"id": record.id, "displayName": record.name}});
    append(
        c,
        Some(&record.id),
        actor,
        AuditAction::ProjectCreated,
        data,
    )
    .await?;
    Ok(record)
}

/// Projects by name; `only` limits them to those ids.
pub async fn list_projects(
    c: &mut dyn Conn,
    only: Option<&[String]>,
) -> StoreResult<Vec<ProjectRecord>> {
    let (sql, args) = match only {
        None => (
            "SELECT * FROM projects ORDER BY name, id".to_string(),
            Vec::new(),
        ),
        Some(ids) => {
            let (cond, args) = in_list("id", ids);
            (
                format!("SELECT * FROM projects WHERE {cond} ORDER BY name, id"),
                args,
            )
        }
    };
    c.query(&sql, args).await?.iter().map(project).collect()
}

pub async fn get_project(c: &mut dyn Conn, id: &str) -> StoreResult<Option<ProjectRecord>> {
    c.query_opt("SELECT * FROM projects WHERE id = ?", params![id])
        .await?
        .map(|r| project(&r))
        .transpose()
}

/// `(project id, role)` of every project a person is a member of.
pub async fn memberships(c: &mut dyn Conn, user_id: &str) -> StoreResult<Vec<(String, Role)>> {
    c.query(
        "SELECT project_id, role FROM project_members WHERE user_id = ? ORDER BY project_id",
        params![user_id],
    )
    .await?
    .iter()
    .map(|r| Ok((r.text("project_id")?, r.parse("role")?)))
    .collect()
}

/// Gives `user_id` `role` in `project_id` (adding or changing the membership). True when added.
pub async fn put_member(
    c: &mut dyn Conn,
    actor: &Actor,
    project_id: &str,
    user_id: &str,
    role: Role,
) -> StoreResult<bool> {
    if role.project_rank().is_none() {
        return Err(StoreError::Conflict(format!(
            "role: {role} is a platform role, not a project role"
        )));
    }
    if get_project(c, project_id).await?.is_none() {
        return Err(StoreError::NotFound(format!("project {project_id}")));
    }
    let person = get_user(c, user_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))?;
    let added = c
        .query_opt(
            "INSERT INTO project_members (project_id, user_id, role, created) VALUES (?, ?, ?, ?) \
             ON CONFLICT (project_id, user_id) DO NOTHING RETURNING user_id",
            params![project_id, user_id, role.as_str(), now_text()],
        )
        .await?
        .is_some();
    if !added {
        c.execute(
            "UPDATE project_members SET role = ? WHERE project_id = ? AND user_id = ?",
            params![role.as_str(), project_id, user_id],
        )
        .await?;
    }
    let action = if added {
        AuditAction::ProjectMemberAdded
    } else {
        AuditAction::ProjectMemberUpdated
    };
    let data = member_data(project_id, &person, role);
    append(c, Some(project_id), actor, action, data).await?;
    Ok(added)
}

pub async fn remove_member(
    c: &mut dyn Conn,
    actor: &Actor,
    project_id: &str,
    user_id: &str,
) -> StoreResult<bool> {
    let Some(row) = c
        .query_opt(
            "DELETE FROM project_members WHERE project_id = ? AND user_id = ? RETURNING role",
            params![project_id, user_id],
        )
        .await?
    else {
        return Ok(false);
    };
    let role: Role = row.parse("role")?;
    if let Some(person) = get_user(c, user_id).await? {
        let data = member_data(project_id, &person, role);
        append(
            c,
            Some(project_id),
            actor,
            AuditAction::ProjectMemberRemoved,
            data,
        )
        .await?;
    }
    Ok(true)
}

pub async fn list_members(c: &mut dyn Conn, project_id: &str) -> StoreResult<Vec<MemberRecord>> {
    c.query(
        "SELECT m.project_id, m.user_id, u.email, u.name, m.role, m.created \
         FROM project_members m JOIN users u ON u.id = m.user_id \
         WHERE m.project_id = ? ORDER BY u.email",
        params![project_id],
    )
    .await?
    .iter()
    .map(member)
    .collect()
}

/// Stores a new session (the sign-in's audit event is the caller's, success or not).
pub async fn create_session(c: &mut dyn Conn, record: &SessionRecord) -> StoreResult<()> {
    c.execute(
        "INSERT INTO sessions (id, user_id, csrf, ip, created_ms, last_seen_ms, expires_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![
            &record.id,
            &record.user_id,
            &record.csrf,
            &record.ip,
            record.created_ms,
            record.last_seen_ms,
            record.expires_ms
        ],
    )
    .await?;
    // Expired sessions are swept as new ones start, so the table stays small without a job.
    c.execute(
        "DELETE FROM sessions WHERE expires_ms < ?",
        params![epoch_ms()],
    )
    .await?;
    Ok(())
}

/// A session and its person, when both exist.
pub async fn session_of(
    c: &mut dyn Conn,
    id: &str,
) -> StoreResult<Option<(SessionRecord, UserRecord)>> {
    let Some(row) = c
        .query_opt("SELECT * FROM sessions WHERE id = ?", params![id])
        .await?
    else {
        return Ok(None);
    };
    let record = session(&row)?;
    Ok(get_user(c, &record.user_id).await?.map(|u| (record, u)))
}

/// Ends a session. The sign-out's audit event is written with it.
pub async fn delete_session(
    c: &mut dyn Conn,
    actor: &Actor,
    id: &str,
    user: &UserRecord,
) -> StoreResult<bool> {
    let done = c
        .execute("DELETE FROM sessions WHERE id = ?", params![id])
        .await?;
    if done > 0 {
        append(c, None, actor, AuditAction::UserSignedOut, user_data(user)).await?;
    }
    Ok(done > 0)
}

pub async fn create_api_key(
    c: &mut dyn Conn,
    actor: &Actor,
    new: &NewApiKey,
) -> StoreResult<ApiKeyRecord> {
    let record = ApiKeyRecord {
        id: new_id(),
        platform_id: PLATFORM.into(),
        project_id: new.project_id.clone(),
        name: new.name.clone(),
        role: new.role,
        prefix: new.prefix.clone(),
        expires_ms: new.expires_ms,
        last_used_ms: None,
        revoked: None,
        created: now_text(),
        created_by: actor.user_id.clone(),
    };
    c.execute(
        "INSERT INTO api_keys (id, platform_id, project_id, name, role, prefix, hash, expires_ms, created, created_by) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            &record.id,
            &record.platform_id,
            &record.project_id,
            &record.name,
            record.role.as_str(),
            &record.prefix,
            &new.hash,
            record.expires_ms,
            &record.created,
            &record.created_by
        ],
    )
    .await?;
    let project = record.project_id.clone();
    append(
        c,
        project.as_deref(),
        actor,
        AuditAction::ApiKeyCreated,
        key_data(&record),
    )
    .await?;
    Ok(record)
}

/// The key whose SHA-256 is `hash`, revoked or not (the caller decides).
pub async fn api_key_by_hash(c: &mut dyn Conn, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
    c.query_opt("SELECT * FROM api_keys WHERE hash = ?", params![hash])
        .await?
        .map(|r| api_key(&r))
        .transpose()
}

pub async fn touch_api_key(c: &mut dyn Conn, id: &str, at_ms: i64) -> StoreResult<()> {
    c.execute(
        "UPDATE api_keys SET last_used_ms = ? WHERE id = ?",
        params![at_ms, id],
    )
    .await?;
    Ok(())
}

/// Keys of a project (`Some`) or the platform-wide keys (`None`), newest first.
pub async fn list_api_keys(
    c: &mut dyn Conn,
    project_id: Option<&str>,
) -> StoreResult<Vec<ApiKeyRecord>> {
    let rows = match project_id {
        Some(p) => {
            c.query(
                "SELECT * FROM api_keys WHERE project_id = ? ORDER BY id DESC",
                params![p],
            )
            .await?
        }
        None => {
            c.query(
                "SELECT * FROM api_keys WHERE project_id IS NULL ORDER BY id DESC",
                params![],
            )
            .await?
        }
    };
    rows.iter().map(api_key).collect()
}

/// Revokes a key of `project_id` (`None`: a platform-wide key). False when there was no such
/// live key there.
pub async fn revoke_api_key(
    c: &mut dyn Conn,
    actor: &Actor,
    project_id: Option<&str>,
    id: &str,
) -> StoreResult<bool> {
    let Some(row) = c
        .query_opt(
            "UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL \
             AND ((? IS NULL AND project_id IS NULL) OR project_id = ?) RETURNING *",
            params![now_text(), id, project_id, project_id],
        )
        .await?
    else {
        return Ok(false);
    };
    let record = api_key(&row)?;
    append(
        c,
        project_id,
        actor,
        AuditAction::ApiKeyRevoked,
        key_data(&record),
    )
    .await?;
    Ok(true)
}

pub async fn create_invitation(
    c: &mut dyn Conn,
    actor: &Actor,
    record: &InvitationRecord,
    hash: &str,
) -> StoreResult<()> {
    if get_project(c, &record.project_id).await?.is_none() {
        return Err(StoreError::NotFound(format!(
            "project {}",
            record.project_id
        )));
    }
    c.execute(
        "INSERT INTO invitations (id, project_id, email, role, hash, expires_ms, created, created_by) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            &record.id,
            &record.project_id,
            &record.email,
            record.role.as_str(),
            hash,
            record.expires_ms,
            &record.created,
            &record.created_by
        ],
    )
    .await?;
    let data = json!({"invitation": {"id": record.id, "email": record.email},
        "projectRole": {"name": record.role.as_str(), "permissions": record.role.permissions()}});
    append(
        c,
        Some(&record.project_id),
        actor,
        AuditAction::ProjectInvitationCreated,
        data,
    )
    .await
}

/// Open (not accepted) invitations of a project, newest first.
pub async fn list_invitations(
    c: &mut dyn Conn,
    project_id: &str,
) -> StoreResult<Vec<InvitationRecord>> {
    c.query(
        "SELECT * FROM invitations WHERE project_id = ? AND accepted IS NULL ORDER BY id DESC",
        params![project_id],
    )
    .await?
    .iter()
    .map(invitation)
    .collect()
}

pub async fn revoke_invitation(
    c: &mut dyn Conn,
    actor: &Actor,
    project_id: &str,
    id: &str,
) -> StoreResult<bool> {
    let Some(row) = c
        .query_opt(
            "DELETE FROM invitations WHERE id = ? AND project_id = ? AND accepted IS NULL RETURNING email",
            params![id, project_id],
        )
        .await?
    else {
        return Ok(false);
    };
    let data = json!({"invitation": {"id": id, "email": row.text("email")?}});
    append(
        c,
        Some(project_id),
        actor,
        AuditAction::ProjectInvitationRevoked,
        data,
    )
    .await?;
    Ok(true)
}

/// An open (not accepted, not expired) invitation by its token's digest.
pub async fn open_invitation(
    c: &mut dyn Conn,
    hash: &str,
) -> StoreResult<Option<InvitationRecord>> {
    c.query_opt(
        "SELECT * FROM invitations WHERE hash = ? AND accepted IS NULL AND expires_ms > ?",
        params![hash, epoch_ms()],
    )
    .await?
    .map(|r| invitation(&r))
    .transpose()
}

/// What accepting an invitation does with its email's account (decided, and any password
/// hashed or checked, by the caller before the write: no argon2 work on the writer).
#[derive(Debug, Clone)]
pub enum Invitee {
    /// No account yet: one is created with this password hash and name.
    New { password_hash: String, name: String },
    /// The account exists; the caller proved its password.
    Existing,
}

/// Takes the invitation whose token hashes to `hash` (once: it is marked accepted in the same
/// transaction) and makes its person a member. Unknown, used and expired tokens are NotFound.
pub async fn accept_invitation(
    c: &mut dyn Conn,
    hash: &str,
    ip: Option<String>,
    invitee: Invitee,
) -> StoreResult<(UserRecord, InvitationRecord)> {
    let gone = || StoreError::NotFound("invitation (unknown, used or expired)".into());
    let row = c
        .query_opt(
            "UPDATE invitations SET accepted = ? WHERE hash = ? AND accepted IS NULL AND expires_ms > ? RETURNING *",
            params![now_text(), hash, epoch_ms()],
        )
        .await?
        .ok_or_else(gone)?;
    let record = invitation(&row)?;
    let person = match invitee {
        Invitee::Existing => {
            user_for_sign_in(c, &record.email)
                .await?
                .ok_or_else(gone)?
                .0
        }
        Invitee::New {
            password_hash,
            name,
        } => {
            let actor = Actor {
                user_id: None,
                user_email: Some(record.email.clone()),
                ip: ip.clone(),
            };
            let new = NewUser {
                email: record.email.clone(),
                name,
                password_hash,
                platform_role: None,
            };
            create_user(c, &actor, &new, "invitation").await?
        }
    };
    let actor = Actor {
        user_id: Some(person.id.clone()),
        user_email: Some(person.email.clone()),
        ip,
    };
    put_member(c, &actor, &record.project_id, &person.id, record.role).await?;
    Ok((person, record))
}

/// The owner of a flow, run or destination; `None` when there is no such record.
pub async fn owner(c: &mut dyn Conn, kind: Owned, id: &str) -> StoreResult<Option<Owner>> {
    let sql = match kind {
        Owned::Flow => {
            "SELECT project_id, 'PROJECT' AS scope FROM flows WHERE id = ? AND deleted IS NULL"
        }
        Owned::Run => "SELECT project_id, 'PROJECT' AS scope FROM runs WHERE id = ?",
        Owned::Destination => "SELECT project_id, scope FROM destinations WHERE id = ?",
    };
    c.query_opt(sql, params![id])
        .await?
        .map(|r| {
            Ok(match r.text("scope")?.as_str() {
                "PLATFORM" => Owner::Platform,
                _ => Owner::Project(r.text("project_id")?),
            })
        })
        .transpose()
}

impl Store {
    /// Creates a person (`how`: "admin", "cli", "invitation"), audited as `user.signed.up`.
    /// Conflict when the email is taken.
    pub async fn create_user(
        &self,
        actor: &Actor,
        new: &NewUser,
        how: &str,
    ) -> StoreResult<UserRecord> {
        on!(self.write, [actor, new, how], |c| create_user(
            c, &actor, &new, &how
        ))
    }

    pub async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        on!(self.read, [], |c| list_users(c))
    }

    pub async fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        on!(self.read, [id], |c| get_user(c, &id))
    }

    /// The person with `email` and their password hash: only the sign-in check reads the hash.
    pub async fn user_for_sign_in(&self, email: &str) -> StoreResult<Option<(UserRecord, String)>> {
        on!(self.read, [email], |c| user_for_sign_in(c, &email))
    }

    /// Changes a person; disabling them or changing their password ends their sessions.
    pub async fn update_user(
        &self,
        actor: &Actor,
        id: &str,
        change: &UserChange,
    ) -> StoreResult<UserRecord> {
        on!(self.write, [actor, id, change], |c| update_user(
            c, &actor, &id, &change
        ))
    }

    pub async fn create_project(&self, actor: &Actor, name: &str) -> StoreResult<ProjectRecord> {
        on!(self.write, [actor, name], |c| create_project(
            c, &actor, &name
        ))
    }

    /// Projects by name; `only` limits them to those ids.
    pub async fn list_projects(
        &self,
        only: Option<Vec<String>>,
    ) -> StoreResult<Vec<ProjectRecord>> {
        on!(self.read, [], |c| list_projects(c, only.as_deref()))
    }

    pub async fn get_project(&self, id: &str) -> StoreResult<Option<ProjectRecord>> {
        on!(self.read, [id], |c| get_project(c, &id))
    }

    /// `(project id, role)` of every membership of a person.
    pub async fn memberships(&self, user_id: &str) -> StoreResult<Vec<(String, Role)>> {
        on!(self.read, [user_id], |c| memberships(c, &user_id))
    }

    /// Adds a member or changes their role. True when added.
    pub async fn put_member(
        &self,
        actor: &Actor,
        project_id: &str,
        user_id: &str,
        role: Role,
    ) -> StoreResult<bool> {
        on!(self.write, [actor, project_id, user_id], |c| put_member(
            c,
            &actor,
            &project_id,
            &user_id,
            role
        ))
    }

    pub async fn remove_member(
        &self,
        actor: &Actor,
        project_id: &str,
        user_id: &str,
    ) -> StoreResult<bool> {
        on!(self.write, [actor, project_id, user_id], |c| {
            remove_member(c, &actor, &project_id, &user_id)
        })
    }

    pub async fn list_members(&self, project_id: &str) -> StoreResult<Vec<MemberRecord>> {
        on!(self.read, [project_id], |c| list_members(c, &project_id))
    }

    pub async fn create_session(&self, record: &SessionRecord) -> StoreResult<()> {
        on!(self.write, [record], |c| create_session(c, &record))
    }

    /// The session whose id (cookie digest) is `id`, with its person.
    pub async fn session(&self, id: &str) -> StoreResult<Option<(SessionRecord, UserRecord)>> {
        on!(self.read, [id], |c| session_of(c, &id))
    }

    /// Records activity on a session (idle expiry counts from here).
    pub async fn touch_session(&self, id: &str, at_ms: i64) -> StoreResult<()> {
        on!(self.write, [id], |c| async move {
            c.execute(
                "UPDATE sessions SET last_seen_ms = ? WHERE id = ?",
                params![at_ms, &id],
            )
            .await
            .map(|_| ())
        })
    }

    /// Ends a session (sign-out), audited. False when it had already ended.
    pub async fn delete_session(
        &self,
        actor: &Actor,
        id: &str,
        user: &UserRecord,
    ) -> StoreResult<bool> {
        on!(self.write, [actor, id, user], |c| delete_session(
            c, &actor, &id, &user
        ))
    }

    /// Forgets an expired session without an audit event.
    pub async fn expire_session(&self, id: &str) -> StoreResult<()> {
        on!(self.write, [id], |c| async move {
            c.execute("DELETE FROM sessions WHERE id = ?", params![&id])
                .await
                .map(|_| ())
        })
    }

    pub async fn create_api_key(
        &self,
        actor: &Actor,
        new: &NewApiKey,
    ) -> StoreResult<ApiKeyRecord> {
        on!(self.write, [actor, new], |c| create_api_key(
            c, &actor, &new
        ))
    }

    pub async fn api_key_by_hash(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        on!(self.read, [hash], |c| api_key_by_hash(c, &hash))
    }

    pub async fn touch_api_key(&self, id: &str, at_ms: i64) -> StoreResult<()> {
        on!(self.write, [id], |c| touch_api_key(c, &id, at_ms))
    }

    pub async fn list_api_keys(&self, project_id: Option<&str>) -> StoreResult<Vec<ApiKeyRecord>> {
        let project_id = project_id.map(str::to_string);
        on!(self.read, [], |c| list_api_keys(c, project_id.as_deref()))
    }

    pub async fn revoke_api_key(
        &self,
        actor: &Actor,
        project_id: Option<&str>,
        id: &str,
    ) -> StoreResult<bool> {
        let project_id = project_id.map(str::to_string);
        on!(self.write, [actor, id], |c| revoke_api_key(
            c,
            &actor,
            project_id.as_deref(),
            &id
        ))
    }

    pub async fn create_invitation(
        &self,
        actor: &Actor,
        record: &InvitationRecord,
        hash: &str,
    ) -> StoreResult<()> {
        on!(self.write, [actor, record, hash], |c| create_invitation(
            c, &actor, &record, &hash
        ))
    }

    pub async fn list_invitations(&self, project_id: &str) -> StoreResult<Vec<InvitationRecord>> {
        on!(self.read, [project_id], |c| list_invitations(
            c,
            &project_id
        ))
    }

    pub async fn revoke_invitation(
        &self,
        actor: &Actor,
        project_id: &str,
        id: &str,
    ) -> StoreResult<bool> {
        on!(self.write, [actor, project_id, id], |c| revoke_invitation(
            c,
            &actor,
            &project_id,
            &id
        ))
    }

    /// An open invitation by its token's digest.
    pub async fn open_invitation(&self, hash: &str) -> StoreResult<Option<InvitationRecord>> {
        on!(self.read, [hash], |c| open_invitation(c, &hash))
    }

    /// Accepts an invitation, once (a second acceptance is NotFound), creating the account or
    /// using the existing one as `invitee` says, and adds the membership.
    pub async fn accept_invitation(
        &self,
        hash: &str,
        ip: Option<String>,
        invitee: Invitee,
    ) -> StoreResult<(UserRecord, InvitationRecord)> {
        on!(self.write, [hash], |c| accept_invitation(
            c, &hash, ip, invitee
        ))
    }

    /// Who owns a flow, run or destination (`None`: no such record).
    pub async fn owner(&self, kind: Owned, id: &str) -> StoreResult<Option<Owner>> {
        on!(self.read, [id], |c| owner(c, kind, &id))
    }
}
