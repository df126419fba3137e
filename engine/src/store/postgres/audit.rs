//! The audit log on PostgreSQL: appending inside the transaction of each change (hash chain +
//! outbox entries), and reading it back.
//!
//! Several processes append to one chain, so every append locks the one-row `audit_chain_head`
//! table first and keeps the lock until its transaction ends. That serializes appends: each one
//! links to the hash the previous committed append left in the head, the chain never forks, and
//! `seq` (taken from the head, not from a sequence) is gap-free and in commit order, which is what
//! makes `seq` a safe pagination cursor. Callers append as the last write of their transaction so
//! the lock is held only for the commit.

use super::rows::{json, paginate};
use crate::store::audit::{AuditDraft, chain_hash, envelope};
use crate::store::{AuditFilter, AuditRow, Page, StoreError, StoreResult, new_id, now_text};
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};

/// Column vectors of the rows one append writes (bound as arrays and `UNNEST`ed, so the
/// statement text is the same for any number of rows and stays prepared).
#[derive(Default)]
struct AuditRows {
    seq: Vec<i64>,
    id: Vec<String>,
    platform_id: Vec<String>,
    project_id: Vec<Option<String>>,
    user_id: Vec<Option<String>>,
    action: Vec<String>,
    body: Vec<String>,
    prev_hash: Vec<String>,
    hash: Vec<String>,
}

/// Appends `drafts` in order within `tx`, with the outbox entries of matching destinations.
pub async fn append(tx: &mut Transaction<'_, Postgres>, drafts: &[AuditDraft]) -> StoreResult<()> {
    if drafts.is_empty() {
        return Ok(());
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE")
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the audit chain head row is missing".into()))?;
    let mut seq: i64 = head.try_get("seq")?;
    let mut prev: String = head.try_get("hash")?;
    // Taken under the lock, so `created` never goes backwards along the chain within a process.
    let created = now_text();
    let mut rows = AuditRows::default();
    for draft in drafts {
        let id = new_id();
        let body = envelope(&id, &created, draft).to_string();
        let hash = chain_hash(&prev, &body);
        seq += 1;
        rows.seq.push(seq);
        rows.id.push(id);
        rows.platform_id.push(draft.platform_id.clone());
        rows.project_id.push(draft.project_id.clone());
        rows.user_id.push(draft.actor.user_id.clone());
        rows.action.push(draft.action.clone());
        rows.body.push(body);
        rows.prev_hash
            .push(std::mem::replace(&mut prev, hash.clone()));
        rows.hash.push(hash);
    }
    sqlx::query(
        "INSERT INTO audit_events (seq, id, created, platform_id, project_id, user_id, action, body, prev_hash, hash) \
         SELECT t.seq, t.id, $3, t.platform_id, t.project_id, t.user_id, t.action, t.body, t.prev_hash, t.hash \
         FROM UNNEST($1::bigint[], $2::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) \
         AS t(seq, id, platform_id, project_id, user_id, action, body, prev_hash, hash)",
    )
    .bind(&rows.seq)
    .bind(&rows.id)
    .bind(&created)
    .bind(&rows.platform_id)
    .bind(&rows.project_id)
    .bind(&rows.user_id)
    .bind(&rows.action)
    .bind(&rows.body)
    .bind(&rows.prev_hash)
    .bind(&rows.hash)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&prev)
        .execute(&mut **tx)
        .await?;
    enqueue_deliveries(tx, &rows, &created).await
}

/// Writes an outbox entry for every enabled destination whose filter matches each event, in the
/// same transaction as the events themselves.
async fn enqueue_deliveries(
    tx: &mut Transaction<'_, Postgres>,
    rows: &AuditRows,
    created: &str,
) -> StoreResult<()> {
    let destinations = sqlx::query("SELECT id, events FROM destinations WHERE enabled = TRUE")
        .fetch_all(&mut **tx)
        .await?;
    if destinations.is_empty() {
        return Ok(());
    }
    let filters: Vec<(String, Vec<String>)> = destinations
        .iter()
        .map(|r| {
            let events: String = r.try_get("events")?;
            // Same leniency as SQLite: an unreadable filter delivers everything.
            Ok((
                r.try_get("id")?,
                serde_json::from_str(&events).unwrap_or_default(),
            ))
        })
        .collect::<StoreResult<_>>()?;
    let mut ids = Vec::new();
    let mut destination_ids = Vec::new();
    let mut seqs = Vec::new();
    let mut payloads = Vec::new();
    for i in 0..rows.seq.len() {
        for (destination, events) in &filters {
            if events.is_empty() || events.iter().any(|e| *e == rows.action[i]) {
                ids.push(new_id());
                destination_ids.push(destination.clone());
                seqs.push(rows.seq[i]);
                payloads.push(rows.body[i].clone());
            }
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO outbox (id, destination_id, audit_seq, payload, status, attempts, next_attempt, created) \
         SELECT t.id, t.destination_id, t.audit_seq, t.payload, 'PENDING', 0, $5, $6 \
         FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[]) AS t(id, destination_id, audit_seq, payload)",
    )
    .bind(&ids)
    .bind(&destination_ids)
    .bind(&seqs)
    .bind(&payloads)
    .bind(chrono::Utc::now().timestamp_millis())
    .bind(created)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Appends events that are not part of another change, in a transaction of their own.
pub async fn record(pool: &PgPool, drafts: &[AuditDraft]) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    append(&mut tx, drafts).await?;
    tx.commit().await?;
    Ok(())
}

/// Audit envelopes, newest first, paginated by `seq`.
pub async fn list(pool: &PgPool, filter: &AuditFilter) -> StoreResult<Page<Value>> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT seq, body FROM audit_events WHERE TRUE");
    if !filter.actions.is_empty() {
        q.push(" AND action = ANY(")
            .push_bind(filter.actions.clone())
            .push(")");
    }
    if !filter.project_ids.is_empty() {
        q.push(" AND project_id = ANY(")
            .push_bind(filter.project_ids.clone())
            .push(")");
    }
    if let Some(user) = &filter.user_id {
        q.push(" AND user_id = ").push_bind(user.clone());
    }
    if let Some(after) = &filter.created_after {
        q.push(" AND created >= ").push_bind(after.clone());
    }
    if let Some(before) = &filter.created_before {
        q.push(" AND created < ").push_bind(before.clone());
    }
    let cursor = match &filter.cursor {
        Some(cursor) => {
            let key = super::rows::cursor_key(cursor);
            let seq = key.parse::<i64>().map_err(|_| {
                StoreError::Conflict("cursor: not a cursor this server issued".into())
            })?;
            Some((cursor, seq))
        }
        None => None,
    };
    let backwards = super::rows::push_cursor(&mut q, "seq", cursor, filter.limit);
    let rows = q.build().fetch_all(pool).await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>("seq")?,
                json(&r.try_get::<String, _>("body")?)?,
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let page = paginate(
        items,
        filter.limit,
        backwards,
        filter.cursor.is_some(),
        |(seq, _)| seq.to_string(),
    );
    Ok(Page {
        data: page.data.into_iter().map(|(_, event)| event).collect(),
        next: page.next,
        previous: page.previous,
    })
}

/// The oldest events created before `before`: `(seq, created, body)`.
pub async fn expired(
    pool: &PgPool,
    before: &str,
    limit: u32,
) -> StoreResult<Vec<(i64, String, String)>> {
    let rows = sqlx::query(
        "SELECT seq, created, body FROM audit_events WHERE created < $1 ORDER BY seq LIMIT $2",
    )
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("seq")?, r.try_get("created")?, r.try_get("body")?)))
        .collect()
}

/// Deletes events up to and including `seq`. The chain head is kept, so later appends still
/// link to the last hash.
pub async fn delete_through(pool: &PgPool, seq: i64) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM audit_events WHERE seq <= $1")
        .bind(seq)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Rows in chain order after `after_seq`, for verification.
pub async fn chain(pool: &PgPool, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRow>> {
    Ok(sqlx::query_as::<_, AuditRow>(
        "SELECT seq, id, body, prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after_seq)
    .bind(i64::from(limit))
    .fetch_all(pool)
        .await?)
}
