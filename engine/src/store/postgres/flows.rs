//! Flows and their versions on PostgreSQL. Every change writes its audit event in the same
//! transaction.

use super::audit;
use super::rows::{cursor_key, flow_record, paginate, push_cursor};
use crate::store::{
    Actor, AuditDraft, Cursor, FlowRecord, Page, Scope, StoreError, StoreResult, new_id, now_text,
};
use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};

pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    scope: &Scope,
    name: &str,
    definition: &Value,
) -> StoreResult<FlowRecord> {
    let id = new_id();
    let now = now_text();
    let text = definition.to_string();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO flows (id, platform_id, project_id, name, version, definition, created, updated) \
         VALUES ($1, $2, $3, $4, 1, $5, $6, $6)",
    )
    .bind(&id)
    .bind(&scope.platform_id)
    .bind(&scope.project_id)
    .bind(name)
    .bind(&text)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    insert_version(&mut tx, &id, 1, &text, &now).await?;
    let data = json!({"flow": {"id": id, "displayName": name, "version": 1}});
    let draft = AuditDraft::new(
        &scope.platform_id,
        Some(&scope.project_id),
        actor,
        "flow.created",
        data,
    );
    audit::append(&mut tx, &[draft]).await?;
    tx.commit().await?;
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

/// Saves the next version. The `UPDATE … RETURNING version` row lock makes concurrent updates of
/// one flow take consecutive versions instead of colliding.
pub async fn update(
    pool: &PgPool,
    actor: &Actor,
    id: &str,
    name: &str,
    definition: &Value,
) -> StoreResult<FlowRecord> {
    let now = now_text();
    let text = definition.to_string();
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "UPDATE flows SET name = $1, version = version + 1, definition = $2, updated = $3 \
         WHERE id = $4 AND deleted IS NULL RETURNING *",
    )
    .bind(name)
    .bind(&text)
    .bind(&now)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("flow {id}")))?;
    let record = flow_record(&row)?;
    insert_version(&mut tx, id, record.version, &text, &now).await?;
    let data = json!({"flow": {"id": id, "displayName": name, "version": record.version}});
    let draft = AuditDraft::new(
        &record.platform_id,
        Some(&record.project_id),
        actor,
        "flow.updated",
        data,
    );
    audit::append(&mut tx, &[draft]).await?;
    tx.commit().await?;
    Ok(record)
}

pub async fn delete(pool: &PgPool, actor: &Actor, id: &str) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "UPDATE flows SET deleted = $1 WHERE id = $2 AND deleted IS NULL \
         RETURNING name, version, platform_id, project_id",
    )
    .bind(now_text())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let name: String = row.try_get("name")?;
    let version: i64 = row.try_get("version")?;
    let platform: String = row.try_get("platform_id")?;
    let project: String = row.try_get("project_id")?;
    let data = json!({"flow": {"id": id, "displayName": name, "version": version}});
    let draft = AuditDraft::new(&platform, Some(&project), actor, "flow.deleted", data);
    audit::append(&mut tx, &[draft]).await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn get(pool: &PgPool, id: &str) -> StoreResult<Option<FlowRecord>> {
    sqlx::query("SELECT * FROM flows WHERE id = $1 AND deleted IS NULL")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|row| flow_record(&row))
        .transpose()
}

pub async fn get_version(pool: &PgPool, id: &str, version: i64) -> StoreResult<Option<FlowRecord>> {
    sqlx::query(
        "SELECT f.id, f.platform_id, f.project_id, f.name, v.version, v.definition, f.created, v.created AS updated \
         FROM flow_versions v JOIN flows f ON f.id = v.flow_id WHERE v.flow_id = $1 AND v.version = $2",
    )
    .bind(id)
    .bind(version)
    .fetch_optional(pool)
    .await?
    .map(|row| flow_record(&row))
    .transpose()
}

pub async fn list(
    pool: &PgPool,
    limit: u32,
    cursor: Option<Cursor>,
) -> StoreResult<Page<FlowRecord>> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT * FROM flows WHERE deleted IS NULL");
    let key = cursor.as_ref().map(|c| (c, cursor_key(c).to_string()));
    let backwards = push_cursor(&mut q, "id", key, limit);
    let rows = q.build().fetch_all(pool).await?;
    let items = rows
        .iter()
        .map(flow_record)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(paginate(items, limit, backwards, cursor.is_some(), |f| {
        f.id.clone()
    }))
}

async fn insert_version(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
    version: i64,
    text: &str,
    now: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO flow_versions (flow_id, version, definition, created) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(version)
    .bind(text)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
