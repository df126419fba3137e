//! Encrypted secrets (the store only ever sees nonce and ciphertext).

use super::audit::{self, AuditDraft};
use super::rows::in_list;
use super::sql::{CHUNK, Conn, Param, params};
use super::{Actor, AuditAction, Scope, SecretInfo, StoreResult, now_text};
use serde_json::json;

/// Creates or replaces a secret. Returns true when it was created. The insert that skips an
/// existing name tells "created" from "replaced" exactly, also when two processes put the same
/// new name at once (the second waits on the unique index, then updates).
pub async fn put(
    c: &mut dyn Conn,
    actor: &Actor,
    scope: &Scope,
    name: &str,
    nonce: &str,
    ciphertext: &str,
) -> StoreResult<bool> {
    let now = now_text();
    let created = c
        .query_opt(
            "INSERT INTO secrets (platform_id, project_id, name, nonce, ciphertext, created, updated) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, name) DO NOTHING RETURNING name",
            params![&scope.platform_id, &scope.project_id, name, nonce, ciphertext, &now, &now],
        )
        .await?
        .is_some();
    if !created {
        c.execute(
            "UPDATE secrets SET nonce = ?, ciphertext = ?, updated = ? WHERE project_id = ? AND name = ?",
            params![nonce, ciphertext, &now, &scope.project_id, name],
        )
        .await?;
    }
    let draft = AuditDraft::new(
        &scope.platform_id,
        Some(&scope.project_id),
        actor,
        AuditAction::SecretUpserted,
        json!({"secret": {"name": name}}),
    );
    audit::append(c, &[draft]).await?;
    Ok(created)
}

pub async fn list(c: &mut dyn Conn, scope: &Scope) -> StoreResult<Vec<SecretInfo>> {
    c.query(
        "SELECT name, created, updated FROM secrets WHERE project_id = ? ORDER BY name",
        params![&scope.project_id],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(SecretInfo {
            name: r.text("name")?,
            created: r.text("created")?,
            updated: r.text("updated")?,
        })
    })
    .collect()
}

/// `(name, nonce, ciphertext)` of the named secrets that exist.
pub async fn get(
    c: &mut dyn Conn,
    scope: &Scope,
    names: &[String],
) -> StoreResult<Vec<(String, String, String)>> {
    let mut found = Vec::with_capacity(names.len());
    for chunk in names.chunks(CHUNK) {
        let (cond, mut args) = in_list("name", chunk);
        args.insert(0, Param::from(&scope.project_id));
        for r in c
            .query(
                &format!(
                    "SELECT name, nonce, ciphertext FROM secrets WHERE project_id = ? AND {cond}"
                ),
                args,
            )
            .await?
        {
            found.push((r.text("name")?, r.text("nonce")?, r.text("ciphertext")?));
        }
    }
    Ok(found)
}

pub async fn delete(
    c: &mut dyn Conn,
    actor: &Actor,
    scope: &Scope,
    name: &str,
) -> StoreResult<bool> {
    let done = c
        .execute(
            "DELETE FROM secrets WHERE project_id = ? AND name = ?",
            params![&scope.project_id, name],
        )
        .await?;
    if done == 0 {
        return Ok(false);
    }
    let draft = AuditDraft::new(
        &scope.platform_id,
        Some(&scope.project_id),
        actor,
        AuditAction::SecretDeleted,
        json!({"secret": {"name": name}}),
    );
    audit::append(c, &[draft]).await?;
    Ok(true)
}
