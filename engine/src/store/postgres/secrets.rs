//! Encrypted secrets on PostgreSQL (the store only ever sees nonce and ciphertext).

use super::audit;
use crate::store::{Actor, AuditDraft, Scope, SecretInfo, StoreResult, now_text};
use serde_json::json;
use sqlx::{PgPool, Row};

/// Creates or replaces a secret. Returns true when it was created. `xmax = 0` tells a fresh
/// insert from an upsert that updated an existing row, in the same statement, so two concurrent
/// puts of a new name report "created" exactly once.
pub async fn put(
    pool: &PgPool,
    actor: &Actor,
    scope: &Scope,
    name: &str,
    nonce: &str,
    ciphertext: &str,
) -> StoreResult<bool> {
    let now = now_text();
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "INSERT INTO secrets (platform_id, project_id, name, nonce, ciphertext, created, updated) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (project_id, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
         updated = excluded.updated \
         RETURNING (xmax = 0) AS created",
    )
    .bind(&scope.platform_id)
    .bind(&scope.project_id)
    .bind(name)
    .bind(nonce)
    .bind(ciphertext)
    .bind(&now)
    .fetch_one(&mut *tx)
    .await?;
    let created: bool = row.try_get("created")?;
    let draft = AuditDraft::new(
        &scope.platform_id,
        Some(&scope.project_id),
        actor,
        "secret.upserted",
        json!({"secret": {"name": name}}),
    );
    audit::append(&mut tx, &[draft]).await?;
    tx.commit().await?;
    Ok(created)
}

pub async fn list(pool: &PgPool, scope: &Scope) -> StoreResult<Vec<SecretInfo>> {
    Ok(sqlx::query_as::<_, SecretInfo>(
        "SELECT name, created, updated FROM secrets WHERE project_id = $1 ORDER BY name",
    )
    .bind(&scope.project_id)
    .fetch_all(pool)
    .await?)
}

/// `(name, nonce, ciphertext)` of the named secrets that exist.
pub async fn get(
    pool: &PgPool,
    scope: &Scope,
    names: &[String],
) -> StoreResult<Vec<(String, String, String)>> {
    let rows = sqlx::query(
        "SELECT name, nonce, ciphertext FROM secrets WHERE project_id = $1 AND name = ANY($2)",
    )
    .bind(&scope.project_id)
    .bind(names)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("name")?,
                r.try_get("nonce")?,
                r.try_get("ciphertext")?,
            ))
        })
        .collect()
}

pub async fn delete(pool: &PgPool, actor: &Actor, scope: &Scope, name: &str) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("DELETE FROM secrets WHERE project_id = $1 AND name = $2")
        .bind(&scope.project_id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let draft = AuditDraft::new(
        &scope.platform_id,
        Some(&scope.project_id),
        actor,
        "secret.deleted",
        json!({"secret": {"name": name}}),
    );
    audit::append(&mut tx, &[draft]).await?;
    tx.commit().await?;
    Ok(true)
}
