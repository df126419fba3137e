//! Event destinations on PostgreSQL: settings, the delivery outbox shared by every process, and
//! attempt records.

use super::audit;
use crate::store::{
    Actor, AuditDraft, DeliveryNext, DeliveryRecord, DeliveryResult, DestinationRecord,
    DueDelivery, Redelivery, StoreError, StoreResult, new_id, now_text,
};
use serde_json::{Value, json};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};

fn destination(row: &PgRow) -> StoreResult<DestinationRecord> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
    let events: String = row.try_get("events")?;
    let headers: String = row.try_get("headers")?;
    let secrets: String = row.try_get("secrets")?;
    Ok(DestinationRecord {
        id: row.try_get("id")?,
        platform_id: row.try_get("platform_id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        events: serde_json::from_str(&events).map_err(corrupt)?,
        enabled: row.try_get("enabled")?,
        content_type: row.try_get("content_type")?,
        headers: serde_json::from_str(&headers).map_err(corrupt)?,
        token: row.try_get("token")?,
        secrets: serde_json::from_str(&secrets).map_err(corrupt)?,
        disabled_reason: row.try_get("disabled_reason")?,
        failing_since: row.try_get("failing_since")?,
        paused_until: row.try_get("paused_until")?,
        consecutive_failures: row.try_get("consecutive_failures")?,
        created: row.try_get("created")?,
        updated: row.try_get("updated")?,
    })
}

fn audit_data(d: &DestinationRecord) -> Value {
    json!({"destination": {"id": d.id, "name": d.name, "url": d.url, "events": d.events, "enabled": d.enabled}})
}

/// Appends the audit event of a change to a destination, in the change's transaction.
async fn audit_change(
    tx: &mut Transaction<'_, Postgres>,
    actor: &Actor,
    d: &DestinationRecord,
    action: &str,
) -> StoreResult<()> {
    let draft = AuditDraft::new(
        &d.platform_id,
        Some(&d.project_id),
        actor,
        action,
        audit_data(d),
    );
    audit::append(tx, &[draft]).await
}

pub async fn create(pool: &PgPool, actor: &Actor, d: &DestinationRecord) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO destinations (id, platform_id, project_id, name, url, events, enabled, content_type, headers, \
         token, secrets, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&d.id)
    .bind(&d.platform_id)
    .bind(&d.project_id)
    .bind(&d.name)
    .bind(&d.url)
    .bind(json!(d.events).to_string())
    .bind(d.enabled)
    .bind(&d.content_type)
    .bind(json!(d.headers).to_string())
    .bind(&d.token)
    .bind(json!(d.secrets).to_string())
    .bind(&d.created)
    .bind(&d.updated)
    .execute(&mut *tx)
    .await?;
    audit_change(&mut tx, actor, d, "destination.created").await?;
    tx.commit().await?;
    Ok(())
}

pub async fn update(pool: &PgPool, actor: &Actor, d: &DestinationRecord) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE destinations SET name = $1, url = $2, events = $3, enabled = $4, content_type = $5, headers = $6, \
         token = $7, secrets = $8, disabled_reason = $9, failing_since = $10, paused_until = $11, \
         consecutive_failures = $12, updated = $13 WHERE id = $14",
    )
    .bind(&d.name)
    .bind(&d.url)
    .bind(json!(d.events).to_string())
    .bind(d.enabled)
    .bind(&d.content_type)
    .bind(json!(d.headers).to_string())
    .bind(&d.token)
    .bind(json!(d.secrets).to_string())
    .bind(&d.disabled_reason)
    .bind(&d.failing_since)
    .bind(d.paused_until)
    .bind(d.consecutive_failures)
    .bind(&d.updated)
    .bind(&d.id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("destination {}", d.id)));
    }
    audit_change(&mut tx, actor, d, "destination.updated").await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes a destination and its pending deliveries (delivered and failed ones stay as history).
pub async fn delete(pool: &PgPool, actor: &Actor, id: &str) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let Some(row) = sqlx::query("DELETE FROM destinations WHERE id = $1 RETURNING *")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(false);
    };
    let d = destination(&row)?;
    sqlx::query("DELETE FROM outbox WHERE destination_id = $1 AND status = 'PENDING'")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit_change(&mut tx, actor, &d, "destination.deleted").await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn get(pool: &PgPool, id: &str) -> StoreResult<Option<DestinationRecord>> {
    sqlx::query("SELECT * FROM destinations WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| destination(&r))
        .transpose()
}

pub async fn list(pool: &PgPool) -> StoreResult<Vec<DestinationRecord>> {
    sqlx::query("SELECT * FROM destinations ORDER BY id")
        .fetch_all(pool)
        .await?
        .iter()
        .map(destination)
        .collect()
}

/// Claims up to `per_destination` consecutive due entries from the head of up to
/// `destinations` destinations' queues (in event order; an entry behind the head is taken only
/// while every entry before it is taken too, so each destination receives its events in order).
///
/// Across processes: the claim locks the rows of the destinations it serves
/// (`FOR UPDATE … SKIP LOCKED`, so concurrent claimers pass over each other's destinations
/// instead of waiting) and reads their queues only after holding the lock, with a fresh
/// snapshot, so it sees every earlier claim's leases. An entry is therefore never handed out
/// while another process holds a valid lease on it, and a destination's events are in flight
/// with one process at a time.
pub async fn claim(
    pool: &PgPool,
    destinations: u32,
    per_destination: u32,
    lease_ms: i64,
) -> StoreResult<Vec<DueDelivery>> {
    if destinations == 0 {
        return Ok(Vec::new());
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut tx = pool.begin().await?;
    // Destinations whose queue head is due and free, longest-waiting first. The head check here
    // only avoids locking idle destinations; it is repeated below under the lock.
    let heads = sqlx::query(
        "SELECT d.* FROM destinations d          CROSS JOIN LATERAL (SELECT o.audit_seq, o.next_attempt, o.lease_expires FROM outbox o                              WHERE o.destination_id = d.id AND o.status = 'PENDING'                              ORDER BY o.audit_seq LIMIT 1) h          WHERE d.enabled = TRUE AND (d.paused_until IS NULL OR d.paused_until <= $1)            AND h.next_attempt <= $1 AND (h.lease_expires IS NULL OR h.lease_expires < $1)          ORDER BY h.audit_seq LIMIT $2          FOR UPDATE OF d SKIP LOCKED",
    )
    .bind(now)
    .bind(i64::from(destinations))
    .fetch_all(&mut *tx)
    .await?;
    if heads.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let mut locked = Vec::with_capacity(heads.len());
    for row in &heads {
        locked.push(destination(row)?);
    }
    let ids: Vec<String> = locked.iter().map(|d| d.id.clone()).collect();
    let entries = sqlx::query(
        "SELECT o.id, o.destination_id, o.payload, o.attempts, o.next_attempt, o.lease_expires          FROM UNNEST($1::text[]) WITH ORDINALITY AS d(id, n)          CROSS JOIN LATERAL (SELECT * FROM outbox o WHERE o.destination_id = d.id AND o.status = 'PENDING'                              ORDER BY o.audit_seq LIMIT $2) o          ORDER BY d.n, o.audit_seq",
    )
    .bind(&ids)
    .bind(i64::from(per_destination.max(1)))
    .fetch_all(&mut *tx)
    .await?;
    let mut claimed = Vec::new();
    let mut blocked: Option<String> = None;
    for entry in &entries {
        let destination_id: String = entry.try_get("destination_id")?;
        if blocked.as_ref() == Some(&destination_id) {
            continue;
        }
        let next_attempt: i64 = entry.try_get("next_attempt")?;
        let lease: Option<i64> = entry.try_get("lease_expires")?;
        if next_attempt > now || lease.is_some_and(|l| l >= now) {
            // Not due or held: nothing behind it may go out before it.
            blocked = Some(destination_id);
            continue;
        }
        let record = locked
            .iter()
            .find(|d| d.id == destination_id)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "outbox entry of unclaimed destination {destination_id}"
                ))
            })?;
        claimed.push(DueDelivery {
            outbox_id: entry.try_get("id")?,
            payload: entry.try_get("payload")?,
            attempts: entry.try_get("attempts")?,
            destination: record.clone(),
        });
    }
    if !claimed.is_empty() {
        let taken: Vec<&str> = claimed.iter().map(|c| c.outbox_id.as_str()).collect();
        sqlx::query("UPDATE outbox SET lease_expires = $1 WHERE id = ANY($2)")
            .bind(now + lease_ms)
            .bind(&taken)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Column vectors of a batch of attempts, bound as arrays.
#[derive(Default)]
struct AttemptColumns {
    id: Vec<String>,
    destination_id: Vec<String>,
    outbox_id: Vec<String>,
    attempt: Vec<i64>,
    status_code: Vec<Option<i64>>,
    duration_ms: Vec<f64>,
    error: Vec<Option<String>>,
    response_body: Vec<Option<String>>,
    status: Vec<String>,
    next_attempt: Vec<i64>,
}

/// Records attempts in one transaction: attempt rows, outbox moves, each destination's health
/// (its last result wins) and a `destination.disabled` audit event for each destination the
/// batch disabled. `released` entries lose their lease without an attempt.
///
/// The destination rows are locked first, in id order, as `delete` and the claims take them:
/// a claim never runs for a destination while its results are being recorded, and two of these
/// cannot deadlock.
pub async fn finish(
    pool: &PgPool,
    results: &[DeliveryResult],
    released: &[String],
) -> StoreResult<()> {
    if results.is_empty() && released.is_empty() {
        return Ok(());
    }
    let now = now_text();
    let mut tx = pool.begin().await?;
    let mut destination_ids: Vec<&str> =
        results.iter().map(|r| r.destination_id.as_str()).collect();
    destination_ids.sort_unstable();
    destination_ids.dedup();
    if !destination_ids.is_empty() {
        sqlx::query("SELECT id FROM destinations WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(&destination_ids)
            .execute(&mut *tx)
            .await?;
    }
    let mut cols = AttemptColumns::default();
    for r in results {
        let (status, next) = match r.next {
            DeliveryNext::Delivered => ("DELIVERED", 0),
            DeliveryNext::Retry { at_ms } => ("PENDING", at_ms),
            DeliveryNext::Failed => ("FAILED", 0),
        };
        cols.id.push(new_id());
        cols.destination_id.push(r.destination_id.clone());
        cols.outbox_id.push(r.outbox_id.clone());
        cols.attempt.push(r.attempt);
        cols.status_code.push(r.status_code.map(i64::from));
        cols.duration_ms.push(r.duration_ms);
        cols.error.push(r.error.clone());
        cols.response_body.push(r.response_body.clone());
        cols.status.push(status.to_string());
        cols.next_attempt.push(next);
    }
    if !results.is_empty() {
        sqlx::query(
            "INSERT INTO deliveries (id, destination_id, outbox_id, attempt, status_code, duration_ms, error,              response_body, created)              SELECT t.*, $9 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],              $6::float8[], $7::text[], $8::text[])              AS t(id, destination_id, outbox_id, attempt, status_code, duration_ms, error, response_body)",
        )
        .bind(&cols.id)
        .bind(&cols.destination_id)
        .bind(&cols.outbox_id)
        .bind(&cols.attempt)
        .bind(&cols.status_code)
        .bind(&cols.duration_ms)
        .bind(&cols.error)
        .bind(&cols.response_body)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        // As on SQLite: a delivered entry counts one more attempt; others take the reported one.
        sqlx::query(
            "UPDATE outbox o SET status = v.status,              attempts = CASE WHEN v.status = 'DELIVERED' THEN o.attempts + 1 ELSE v.attempt END,              next_attempt = v.next_attempt, lease_expires = NULL              FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS v(id, status, attempt, next_attempt)              WHERE o.id = v.id",
        )
        .bind(&cols.outbox_id)
        .bind(&cols.status)
        .bind(&cols.attempt)
        .bind(&cols.next_attempt)
        .execute(&mut *tx)
        .await?;
    }
    if !released.is_empty() {
        sqlx::query("UPDATE outbox SET lease_expires = NULL WHERE id = ANY($1)")
            .bind(released)
            .execute(&mut *tx)
            .await?;
    }
    let mut drafts = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for r in results.iter().rev() {
        if done.contains(&r.destination_id.as_str()) {
            continue;
        }
        done.push(&r.destination_id);
        let updated = sqlx::query(
            "UPDATE destinations SET consecutive_failures = $1, failing_since = $2, paused_until = $3,              enabled = CASE WHEN $4::text IS NULL THEN enabled ELSE FALSE END,              disabled_reason = COALESCE($4::text, disabled_reason) WHERE id = $5 RETURNING *",
        )
        .bind(r.consecutive_failures)
        .bind(&r.failing_since)
        .bind(r.paused_until)
        .bind(&r.disable)
        .bind(&r.destination_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let (Some(reason), Some(row)) = (&r.disable, updated) {
            let d = destination(&row)?;
            let mut data = audit_data(&d);
            data["reason"] = json!(reason);
            drafts.push(AuditDraft::new(
                &d.platform_id,
                Some(&d.project_id),
                &Actor::system(),
                "destination.disabled",
                data,
            ));
        }
    }
    audit::append(&mut tx, &drafts).await?;
    tx.commit().await?;
    Ok(())
}

/// Attempts for a destination, newest first.
pub async fn deliveries(
    pool: &PgPool,
    destination_id: &str,
    limit: u32,
) -> StoreResult<Vec<DeliveryRecord>> {
    let rows =
        sqlx::query("SELECT * FROM deliveries WHERE destination_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(destination_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(DeliveryRecord {
                id: r.try_get("id")?,
                event_id: r.try_get("outbox_id")?,
                attempt: r.try_get("attempt")?,
                status_code: r.try_get("status_code")?,
                duration_ms: r.try_get("duration_ms")?,
                error: r.try_get("error")?,
                response_body: r.try_get("response_body")?,
                created: r.try_get("created")?,
            })
        })
        .collect()
}

/// Queues FAILED entries of a destination again.
pub async fn redeliver(
    pool: &PgPool,
    destination_id: &str,
    selection: &Redelivery,
) -> StoreResult<u64> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut tx = pool.begin().await?;
    // Under the destination's lock, like claims: a claim never reads the queue half-changed.
    sqlx::query("SELECT id FROM destinations WHERE id = $1 FOR UPDATE")
        .bind(destination_id)
        .execute(&mut *tx)
        .await?;
    let mut q = QueryBuilder::<Postgres>::new(
        "UPDATE outbox SET status = 'PENDING', attempts = 0, lease_expires = NULL, next_attempt = ",
    );
    q.push_bind(now)
        .push(" WHERE status = 'FAILED' AND destination_id = ")
        .push_bind(destination_id.to_string());
    if let Some(id) = &selection.event_id {
        q.push(" AND id = ").push_bind(id.clone());
    }
    if let Some(after) = &selection.created_after {
        q.push(" AND created >= ").push_bind(after.clone());
    }
    if let Some(before) = &selection.created_before {
        q.push(" AND created < ").push_bind(before.clone());
    }
    let done = q.build().execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    Ok(done)
}
