//! Installed plugin components, flow memory and the default scope: the small tables.

use super::audit::{self, AuditDraft};
use super::sql::{Conn, params};
use super::{StoreError, StoreResult, StoredPlugin, now_text};

/// The channel plugin installs notify, so every process loads a new plugin at once.
pub const PLUGINS_CHANNEL: &str = "hookflow_plugins";

/// Stores a component with its audit event, and tells every process to load it. Installed
/// versions are immutable: the same bytes again (same digest) change nothing and record no
/// second event; other bytes under a stored `name@version` are a [`StoreError::Conflict`],
/// decided inside the transaction, so of two installs racing with different bytes one wins
/// and the other is refused.
pub async fn save(c: &mut dyn Conn, plugin: &StoredPlugin, draft: AuditDraft) -> StoreResult<()> {
    let inserted = c
        .execute(
            "INSERT INTO plugins (name, version, digest, component, installed) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (name, version) DO NOTHING",
            params![
                &plugin.name,
                &plugin.version,
                &plugin.digest,
                &plugin.component,
                now_text()
            ],
        )
        .await?;
    if inserted == 0 {
        let stored = c
            .query_opt(
                "SELECT digest FROM plugins WHERE name = ? AND version = ?",
                params![&plugin.name, &plugin.version],
            )
            .await?
            .map(|r| r.text("digest"))
            .transpose()?;
        return match stored {
            Some(digest) if digest == plugin.digest => Ok(()),
            _ => Err(StoreError::Conflict(format!(
                "{}@{} is installed already with other bytes: an installed version never \
                 changes, so install these under a new version",
                plugin.name, plugin.version
            ))),
        };
    }
    audit::append(c, &[draft]).await?;
    c.notify(PLUGINS_CHANNEL).await
}

/// `(name, version, digest)` of every stored component.
pub async fn digests(c: &mut dyn Conn) -> StoreResult<Vec<(String, String, String)>> {
    c.query(
        "SELECT name, version, digest FROM plugins ORDER BY name, version",
        params![],
    )
    .await?
    .iter()
    .map(|r| Ok((r.text("name")?, r.text("version")?, r.text("digest")?)))
    .collect()
}

/// One stored component.
pub async fn get(c: &mut dyn Conn, name: &str, version: &str) -> StoreResult<Option<StoredPlugin>> {
    c.query_opt(
        "SELECT name, version, digest, component FROM plugins WHERE name = ? AND version = ?",
        params![name, version],
    )
    .await?
    .map(|r| {
        Ok(StoredPlugin {
            name: r.text("name")?,
            version: r.text("version")?,
            digest: r.text("digest")?,
            component: r.blob("component")?,
        })
    })
    .transpose()
}

/// Whether `key` is new to `flow_id`'s memory, without recording it.
pub async fn is_new_key(c: &mut dyn Conn, flow_id: &str, key: &str) -> StoreResult<bool> {
    Ok(c.query_opt(
        "SELECT 1 AS known FROM flow_memory WHERE flow_id = ? AND key = ?",
        params![flow_id, key],
    )
    .await?
    .is_none())
}

/// Records `key` for `flow_id`; true when it was not known before. The primary key decides
/// "first" atomically: of several processes recording the same new key at once, exactly one
/// hears true.
pub async fn record_key(c: &mut dyn Conn, flow_id: &str, key: &str) -> StoreResult<bool> {
    let inserted = c
        .execute(
            "INSERT INTO flow_memory (flow_id, key, created) VALUES (?, ?, ?) \
             ON CONFLICT (flow_id, key) DO NOTHING",
            params![flow_id, key, now_text()],
        )
        .await?;
    Ok(inserted == 1)
}

/// The default platform and project; idempotent, so concurrent first starts are fine.
pub async fn ensure_default_scope(c: &mut dyn Conn) -> StoreResult<()> {
    let now = now_text();
    c.execute(
        "INSERT INTO platforms (id, name, created) VALUES ('default', 'Default platform', ?) \
         ON CONFLICT (id) DO NOTHING",
        params![&now],
    )
    .await?;
    c.execute(
        "INSERT INTO projects (id, platform_id, name, created) VALUES ('default', 'default', 'Default project', ?) \
         ON CONFLICT (id) DO NOTHING",
        params![&now],
    )
    .await?;
    Ok(())
}
