//! Flows and their versions. Every change writes its audit event in the same transaction.

use super::audit::{self, AuditDraft};
use super::rows::{flow_record, in_list, paginate, push_cursor};
use super::sql::{Conn, Param, params};
use super::{
    Actor, AuditAction, Cursor, FlowRecord, Page, Scope, StoreError, StoreResult, new_id, now_text,
};
use serde_json::{Value, json};

pub async fn create(
    c: &mut dyn Conn,
    actor: &Actor,
    scope: &Scope,
    name: &str,
    definition: &Value,
) -> StoreResult<FlowRecord> {
    let id = new_id();
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

/// Saves the next version. The `UPDATE … RETURNING` takes the row's lock, so concurrent updates
/// of one flow take consecutive versions instead of colliding.
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
            "UPDATE flows SET name = ?, version = version + 1, definition = ?, updated = ? \
             WHERE id = ? AND deleted IS NULL RETURNING *",
            params![name, &text, &now, id],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("flow {id}")))?;
    let record = flow_record(&row)?;
    insert_version(c, id, record.version, &text, &now).await?;
    let data = json!({"flow": {"id": id, "displayName": name, "version": record.version}});
    let draft = AuditDraft::new(
        &record.platform_id,
        Some(&record.project_id),
        actor,
        AuditAction::FlowUpdated,
        data,
    );
    audit::append(c, &[draft]).await?;
    Ok(record)
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
