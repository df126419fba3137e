//! Installed plugin components on PostgreSQL, shared by every process.

use super::audit;
use super::listen::{PLUGINS_CHANNEL, notify};
use crate::store::{AuditDraft, StoreResult, StoredPlugin, now_text};
use sqlx::{PgPool, Row};

/// Stores (or replaces) a component with its audit event, in one transaction that also tells
/// every process to load it (`hookflow_plugins`).
pub async fn save(pool: &PgPool, plugin: &StoredPlugin, draft: AuditDraft) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO plugins (name, version, digest, component, installed) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (name, version) DO UPDATE SET digest = EXCLUDED.digest, \
         component = EXCLUDED.component, installed = EXCLUDED.installed",
    )
    .bind(&plugin.name)
    .bind(&plugin.version)
    .bind(&plugin.digest)
    .bind(&plugin.component)
    .bind(now_text())
    .execute(&mut *tx)
    .await?;
    audit::append(&mut tx, &[draft]).await?;
    notify(&mut tx, PLUGINS_CHANNEL).await?;
    tx.commit().await?;
    Ok(())
}

/// `(name, version, digest)` of every stored component.
pub async fn digests(pool: &PgPool) -> StoreResult<Vec<(String, String, String)>> {
    let rows = sqlx::query("SELECT name, version, digest FROM plugins ORDER BY name, version")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("name")?,
                r.try_get("version")?,
                r.try_get("digest")?,
            ))
        })
        .collect()
}

/// One stored component.
pub async fn get(pool: &PgPool, name: &str, version: &str) -> StoreResult<Option<StoredPlugin>> {
    Ok(sqlx::query_as::<_, StoredPlugin>(
        "SELECT name, version, digest, component FROM plugins WHERE name = $1 AND version = $2",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(pool)
    .await?)
}
