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

/// A flow that still runs a plugin version: its published version or its pending draft names
/// it, so removing the version would break the flow's next run or publish.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginUser {
    pub flow_id: String,
    pub flow_name: String,
    /// The flow version that names the plugin.
    pub version: i64,
    /// True when that version is the pending draft, false when it is the published one.
    pub draft: bool,
}

/// What [`remove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginRemoval {
    Removed,
    /// No stored component with that name, version and digest.
    NotFound,
    /// Refused: these flows use it (nothing changed).
    InUse(Vec<PluginUser>),
}

/// Deletes the stored component `name@version` with `digest`, with its audit event, and tells
/// every process to stop serving it; refused while a flow that is not deleted names it in its
/// published version or its pending draft (decided in the same transaction as the delete).
/// Older versions in a flow's history do not count: they run only when asked for by number,
/// and such a run then fails naming the missing plugin. The digest guards against removing a
/// component installed again (other bytes) since the caller read it.
pub async fn remove(
    c: &mut dyn Conn,
    name: &str,
    version: &str,
    digest: &str,
    draft: AuditDraft,
) -> StoreResult<PluginRemoval> {
    let label = format!("{name}@{version}");
    // A cheap text match narrows the flows; parsing each candidate decides (the label could
    // appear in an input value too).
    let pattern = format!("%\"{label}\"%");
    let rows = c
        .query(
            "SELECT f.id, f.name, f.version, f.definition, f.draft_version, v.definition AS draft \
             FROM flows f LEFT JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.draft_version \
             WHERE f.deleted IS NULL AND (f.definition LIKE ? OR v.definition LIKE ?) ORDER BY f.id",
            params![&pattern, &pattern],
        )
        .await?;
    let mut users = Vec::new();
    for row in &rows {
        let published = (row.int("version")?, false, Some(row.json("definition")?));
        let draft = (
            row.opt_int("draft_version")?.unwrap_or_default(),
            true,
            row.opt_json("draft")?,
        );
        for (number, is_draft, definition) in [published, draft] {
            if definition.is_some_and(|d| uses_plugin(d, &label)) {
                users.push(PluginUser {
                    flow_id: row.text("id")?,
                    flow_name: row.text("name")?,
                    version: number,
                    draft: is_draft,
                });
            }
        }
    }
    if !users.is_empty() {
        return Ok(PluginRemoval::InUse(users));
    }
    let deleted = c
        .execute(
            "DELETE FROM plugins WHERE name = ? AND version = ? AND digest = ?",
            params![name, version, digest],
        )
        .await?;
    if deleted == 0 {
        return Ok(PluginRemoval::NotFound);
    }
    audit::append(c, &[draft]).await?;
    c.notify(PLUGINS_CHANNEL).await?;
    Ok(PluginRemoval::Removed)
}

/// Whether a stored flow definition has an action step calling `label` (`name@version`).
fn uses_plugin(definition: serde_json::Value, label: &str) -> bool {
    match crate::flow::flow_from_value(definition) {
        Ok(flow) => flow
            .action_steps()
            .any(|step| step.plugin.to_string() == label),
        // A stored definition that no longer parses matched the text: count it, as the safe side.
        Err(_) => true,
    }
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
