//! Flows and their versions. Every change writes its audit event in the same transaction.

use super::audit::{self, AuditDraft};
use super::rows::{flow_record, in_list, paginate, push_cursor};
use super::sql::{Conn, Param, params};
use super::{
    Actor, AuditAction, Cursor, FlowRecord, FlowState, Page, Scope, StoreError, StoreResult,
    now_text,
};
use serde_json::{Value, json};

/// Stores a new flow at version 1 under `id` (chosen by the caller, so a definition can be
/// bound to its flow before it is written: see [`super::Store::create_flow_as`]).
pub async fn create(
    c: &mut dyn Conn,
    actor: &Actor,
    scope: &Scope,
    id: &str,
    name: &str,
    definition: &Value,
) -> StoreResult<FlowRecord> {
    let id = id.to_string();
    let now = now_text();
    let text = definition.to_string();
    c.execute(
        "INSERT INTO flows (id, platform_id, project_id, name, version, definition, created, updated) \
         VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
        params![&id, &scope.platform_id, &scope.project_id, name, &text, &now, &now],
    )
    .await?;
    insert_version(c, &id, 1, &text, &now).await?;
    let data = json!({"flow": {"id": id, "displayName": name, "version": 1}});
    let draft = AuditDraft::new(
        &scope.platform_id,
        Some(&scope.project_id),
        actor,
        AuditAction::FlowCreated,
        data,
    );
    audit::append(c, &[draft]).await?;
    Ok(FlowRecord {
        id,
        platform_id: scope.platform_id.clone(),
        project_id: scope.project_id.clone(),
        name: name.to_string(),
        version: 1,
        definition: definition.clone(),
        created: now.clone(),
        updated: now,
    })
}

/// Saves the next version and publishes it: what `PUT /v1/flows/{id}` has always done, so
/// clients that know nothing of drafts keep working. A pending draft is superseded (it stays in
/// the history). The `UPDATE … RETURNING` takes the row's lock, so concurrent saves of one flow
/// take consecutive versions instead of colliding. Writes `flow.updated` (with the changes
/// against the version saved before) and `flow.published`.
pub async fn update(
    c: &mut dyn Conn,
    actor: &Actor,
    id: &str,
    name: &str,
    definition: &Value,
) -> StoreResult<FlowRecord> {
    let now = now_text();
    let text = definition.to_string();
    let row = c
        .query_opt(
            "UPDATE flows SET name = ?, version = COALESCE(draft_version, version) + 1, \
             draft_version = NULL, definition = ?, updated = ? \
             WHERE id = ? AND deleted IS NULL RETURNING *",
            params![name, &text, &now, id],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("flow {id}")))?;
    let record = flow_record(&row)?;
    let changes = saved(c, actor, &record, record.version, definition, false).await?;
    let published = published_event(actor, &record);
    audit::append(c, &[changes, published]).await?;
    Ok(record)
}

/// Saves the next version as a draft: stored and listed, but webhooks and schedules keep
/// running the published version until [`publish`]. Writes `flow.updated` with `"draft": true`.
/// Returns the published record (unchanged) and the draft's version number.
pub async fn save_draft(
    c: &mut dyn Conn,
    actor: &Actor,
    id: &str,
    definition: &Value,
) -> StoreResult<(FlowRecord, i64)> {
    let now = now_text();
    let row = c
        .query_opt(
            "UPDATE flows SET draft_version = COALESCE(draft_version, version) + 1, updated = ? \
             WHERE id = ? AND deleted IS NULL RETURNING *",
            params![&now, id],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("flow {id}")))?;
    let record = flow_record(&row)?;
    let draft = row.int("draft_version")?;
    let event = saved(c, actor, &record, draft, definition, true).await?;
    audit::append(c, &[event]).await?;
    Ok((record, draft))
}

/// Makes the pending draft the published version (`flow.published`). `Conflict` when there is
/// no draft. Versions only grow, so a cache keyed by version never brings back an older one.
pub async fn publish(c: &mut dyn Conn, actor: &Actor, id: &str) -> StoreResult<FlowRecord> {
    let Some(draft) = c
        .query_opt(
            "SELECT draft_version FROM flows WHERE id = ? AND deleted IS NULL",
            params![id],
        )
        .await?
    else {
        return Err(StoreError::NotFound(format!("flow {id}")));
    };
    let Some(version) = draft.opt_int("draft_version")? else {
        return Err(StoreError::Conflict(format!(
            "flow {id} has no draft to publish"
        )));
    };
    let text = c
        .query_opt(
            "SELECT definition FROM flow_versions WHERE flow_id = ? AND version = ?",
            params![id, version],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("flow {id} version {version}")))?
        .text("definition")?;
    let definition: Value = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("flow {id} version {version}: {e}")))?;
    let name = definition["name"].as_str().unwrap_or_default().to_string();
    // `draft_version = ?` makes a concurrent publish (or a save that superseded the draft) win
    // cleanly: this one then finds no row to change.
    let row = c
        .query_opt(
            "UPDATE flows SET name = ?, version = ?, definition = ?, draft_version = NULL, updated = ? \
             WHERE id = ? AND deleted IS NULL AND draft_version = ? RETURNING *",
            params![&name, version, &text, now_text(), id, version],
        )
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("flow {id}: its draft changed meanwhile")))?;
    let record = flow_record(&row)?;
    audit::append(c, &[published_event(actor, &record)]).await?;
    Ok(record)
}

/// Turns a flow on or off (`flow.activated` / `flow.deactivated`). Idempotent: setting the state
/// it already has writes no event. `None` when there is no such flow.
pub async fn set_enabled(
    c: &mut dyn Conn,
    actor: &Actor,
    id: &str,
    enabled: bool,
) -> StoreResult<Option<(FlowRecord, FlowState)>> {
    let flag = i64::from(enabled);
    let changed = c
        .query_opt(
            "UPDATE flows SET enabled = ?, updated = ? \
             WHERE id = ? AND deleted IS NULL AND enabled <> ? RETURNING *",
            params![flag, now_text(), id, flag],
        )
        .await?;
    let Some(row) = changed else {
        return get_with_state(c, id).await;
    };
    let record = flow_record(&row)?;
    let action = if enabled {
        AuditAction::FlowActivated
    } else {
        AuditAction::FlowDeactivated
    };
    let data = json!({"flow": {"id": id, "displayName": record.name, "version": record.version,
                               "status": if enabled { "ENABLED" } else { "DISABLED" }}});
    let event = AuditDraft::new(
        &record.platform_id,
        Some(&record.project_id),
        actor,
        action,
        data,
    );
    audit::append(c, &[event]).await?;
    let state = flow_state(&row)?;
    Ok(Some((record, state)))
}

/// The published version of a flow with its lifecycle state.
pub async fn get_with_state(
    c: &mut dyn Conn,
    id: &str,
) -> StoreResult<Option<(FlowRecord, FlowState)>> {
    let Some(row) = c
        .query_opt(
            "SELECT * FROM flows WHERE id = ? AND deleted IS NULL",
            params![id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((flow_record(&row)?, flow_state(&row)?)))
}

/// The lifecycle state of each of `ids` that exists and is not deleted (a page of the list).
pub async fn states(c: &mut dyn Conn, ids: &[String]) -> StoreResult<Vec<(String, FlowState)>> {
    let mut states = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(super::sql::CHUNK) {
        let (cond, args) = in_list("id", chunk);
        let sql = format!(
            "SELECT id, enabled, draft_version FROM flows WHERE deleted IS NULL AND {cond}"
        );
        for row in c.query(&sql, args).await? {
            states.push((row.text("id")?, flow_state(&row)?));
        }
    }
    Ok(states)
}

fn flow_state(row: &super::sql::Row) -> StoreResult<FlowState> {
    Ok(FlowState {
        enabled: row.int("enabled")? != 0,
        draft_version: row.opt_int("draft_version")?,
    })
}

/// Stores `version` of a flow and drafts its `flow.updated` event, whose `data.changes`
/// summarizes the difference from the version saved just before it (draft or published).
async fn saved(
    c: &mut dyn Conn,
    actor: &Actor,
    record: &FlowRecord,
    version: i64,
    definition: &Value,
    draft: bool,
) -> StoreResult<AuditDraft> {
    let id = &record.id;
    let before = c
        .query_opt(
            "SELECT definition FROM flow_versions WHERE flow_id = ? AND version < ? \
             ORDER BY version DESC LIMIT 1",
            params![id, version],
        )
        .await?;
    let before: Value = match before {
        Some(row) => row.json("definition")?,
        None => Value::Null,
    };
    let text = definition.to_string();
    insert_version(c, id, version, &text, &now_text()).await?;
    let name = definition["name"].as_str().unwrap_or(&record.name);
    let data = json!({
        "flow": {"id": id, "displayName": name, "version": version},
        "draft": draft,
        "changes": crate::flow::changes::summarize(&before, definition),
    });
    Ok(AuditDraft::new(
        &record.platform_id,
        Some(&record.project_id),
        actor,
        AuditAction::FlowUpdated,
        data,
    ))
}

fn published_event(actor: &Actor, record: &FlowRecord) -> AuditDraft {
    let data =
        json!({"flow": {"id": record.id, "displayName": record.name, "version": record.version}});
    AuditDraft::new(
        &record.platform_id,
        Some(&record.project_id),
        actor,
        AuditAction::FlowPublished,
        data,
    )
}

/// Soft-deletes a flow; its runs and versions stay, its cache goes.
pub async fn delete(c: &mut dyn Conn, actor: &Actor, id: &str) -> StoreResult<bool> {
    let Some(row) = c
        .query_opt(
            "UPDATE flows SET deleted = ? WHERE id = ? AND deleted IS NULL \
             RETURNING name, version, platform_id, project_id",
            params![now_text(), id],
        )
        .await?
    else {
        return Ok(false);
    };
    // The flow's cached values are short-lived by design; nothing reads them after deletion.
    c.execute("DELETE FROM flow_cache WHERE flow_id = ?", params![id])
        .await?;
    // Likewise the counts of its `threshold` steps: a flow created later starts from zero.
    super::windows::delete_flow(c, id).await?;
    let data = json!({"flow": {"id": id, "displayName": row.text("name")?, "version": row.int("version")?}});
    let draft = AuditDraft::new(
        &row.text("platform_id")?,
        Some(&row.text("project_id")?),
        actor,
        AuditAction::FlowDeleted,
        data,
    );
    audit::append(c, &[draft]).await?;
    Ok(true)
}

pub async fn get(c: &mut dyn Conn, id: &str) -> StoreResult<Option<FlowRecord>> {
    c.query_opt(
        "SELECT * FROM flows WHERE id = ? AND deleted IS NULL",
        params![id],
    )
    .await?
    .map(|row| flow_record(&row))
    .transpose()
}

pub async fn get_version(
    c: &mut dyn Conn,
    id: &str,
    version: i64,
) -> StoreResult<Option<FlowRecord>> {
    c.query_opt(
        "SELECT f.id, f.platform_id, f.project_id, f.name, v.version, v.definition, f.created, v.created AS updated \
         FROM flow_versions v JOIN flows f ON f.id = v.flow_id WHERE v.flow_id = ? AND v.version = ?",
        params![id, version],
    )
    .await?
    .map(|row| flow_record(&row))
    .transpose()
}

/// Flows, newest first; `only` limits them to those projects (`None`: every project).
pub async fn list(
    c: &mut dyn Conn,
    limit: u32,
    cursor: Option<&Cursor>,
    only: Option<&[String]>,
) -> StoreResult<Page<FlowRecord>> {
    let mut sql = String::from("SELECT * FROM flows WHERE deleted IS NULL");
    let mut args = Vec::new();
    if let Some(projects) = only {
        let (cond, values) = in_list("project_id", projects);
        sql.push_str(&format!(" AND {cond}"));
        args.extend(values);
    }
    let key = cursor.map(|c| (c, Param::from(c.key())));
    let backwards = push_cursor(&mut sql, &mut args, "id", key, limit);
    let items = c
        .query(&sql, args)
        .await?
        .iter()
        .map(flow_record)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(paginate(items, limit, backwards, cursor.is_some(), |f| {
        f.id.clone()
    }))
}

/// `(version, created)` of every saved version of a flow, newest first.
pub async fn versions(c: &mut dyn Conn, id: &str) -> StoreResult<Vec<(i64, String)>> {
    c.query(
        "SELECT version, created FROM flow_versions WHERE flow_id = ? ORDER BY version DESC",
        params![id],
    )
    .await?
    .iter()
    .map(|r| Ok((r.int("version")?, r.text("created")?)))
    .collect()
}

async fn insert_version(
    c: &mut dyn Conn,
    id: &str,
    version: i64,
    text: &str,
    now: &str,
) -> StoreResult<()> {
    c.execute(
        "INSERT INTO flow_versions (flow_id, version, definition, created) VALUES (?, ?, ?, ?)",
        params![id, version, text, now],
    )
    .await?;
    Ok(())
}

/// Rewrites the stored definitions of every flow (deleted ones too) and every stored version
/// where `rewrite` changes them, skipping rows already carrying `done` (a text every rewritten
/// definition holds); `candidates` narrows the rows read (a `LIKE` pattern). A row that changed
/// meanwhile keeps its newer text (the update compares the text it read). Returns the rows
/// rewritten.
pub async fn rewrite_definitions(
    c: &mut dyn Conn,
    candidates: &str,
    done: &str,
    rewrite: &DefinitionRewrite,
) -> StoreResult<u64> {
    let skip = format!("%{done}%");
    let mut count = 0;
    // The flows (keyed by id) and the versions (by flow id and version).
    for (table, id_column, version) in [
        ("flows", "id", ""),
        ("flow_versions", "flow_id", " AND version = ?"),
    ] {
        let versioned = !version.is_empty();
        let rows = c
            .query(
                &format!(
                    "SELECT {id_column} AS id, {}definition FROM {table} \
                     WHERE definition LIKE ? AND definition NOT LIKE ?",
                    if versioned { "version, " } else { "" }
                ),
                params![candidates, &skip],
            )
            .await?;
        for row in rows {
            let (id, text) = (row.text("id")?, row.text("definition")?);
            let Ok(mut definition) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if !rewrite(&id, &mut definition) {
                continue;
            }
            let mut args = params![definition.to_string(), &id];
            if versioned {
                args.push(Param::from(row.int("version")?));
            }
            args.push(Param::from(&text));
            let update = format!(
                "UPDATE {table} SET definition = ? WHERE {id_column} = ?{version} AND definition = ?"
            );
            count += c.execute(&update, args).await?;
        }
    }
    Ok(count)
}

/// What [`rewrite_definitions`] applies: `(flow id, definition)`, true when it changed it.
pub type DefinitionRewrite = dyn Fn(&str, &mut Value) -> bool + Send + Sync;

/// The lifecycle operations, run as jobs like the rest of [`super::Store`]'s flow calls.
impl super::Store {
    /// Saves a new flow at version 1 under an id the caller chose ([`super::new_id`]).
    pub async fn create_flow_as(
        &self,
        actor: &Actor,
        scope: &Scope,
        id: &str,
        name: &str,
        definition: &Value,
    ) -> StoreResult<FlowRecord> {
        on!(self.write, [actor, scope, id, name, definition], |c| {
            create(c, &actor, &scope, &id, &name, &definition)
        })
    }

    /// Rewrites stored flow definitions; see [`rewrite_definitions`].
    pub async fn rewrite_flow_definitions(
        &self,
        candidates: &str,
        done: &str,
        rewrite: std::sync::Arc<DefinitionRewrite>,
    ) -> StoreResult<u64> {
        on!(self.write, [candidates, done], |c| rewrite_definitions(
            c,
            &candidates,
            &done,
            &*rewrite
        ))
    }

    /// Saves a draft version of a flow; see [`save_draft`].
    pub async fn save_flow_draft(
        &self,
        actor: &Actor,
        id: &str,
        definition: &Value,
    ) -> StoreResult<(FlowRecord, i64)> {
        on!(self.write, [actor, id, definition], |c| save_draft(
            c,
            &actor,
            &id,
            &definition
        ))
    }

    /// Publishes a flow's draft; see [`publish`].
    pub async fn publish_flow(&self, actor: &Actor, id: &str) -> StoreResult<FlowRecord> {
        on!(self.write, [actor, id], |c| publish(c, &actor, &id))
    }

    /// Enables or disables a flow; see [`set_enabled`].
    pub async fn set_flow_enabled(
        &self,
        actor: &Actor,
        id: &str,
        enabled: bool,
    ) -> StoreResult<Option<(FlowRecord, FlowState)>> {
        on!(self.write, [actor, id], |c| set_enabled(
            c, &actor, &id, enabled
        ))
    }

    /// The lifecycle state of each listed flow; see [`states`].
    pub async fn flow_states(&self, ids: Vec<String>) -> StoreResult<Vec<(String, FlowState)>> {
        on!(self.read, [], |c| states(c, &ids))
    }

    /// The published version of a flow with its lifecycle state.
    pub async fn get_flow_with_state(
        &self,
        id: &str,
    ) -> StoreResult<Option<(FlowRecord, FlowState)>> {
        on!(self.read, [id], |c| get_with_state(c, &id))
    }
}
