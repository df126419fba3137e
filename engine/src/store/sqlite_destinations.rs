//! SQLite side of event destinations: settings, the delivery outbox and attempt records.

use super::audit::{self, AuditDraft};
use super::*;
use serde_json::json;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

fn destination(row: &SqliteRow) -> StoreResult<DestinationRecord> {
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

/// Appends the audit event of a change to a destination, in the change's transaction.
async fn audit_change(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
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

fn audit_data(d: &DestinationRecord) -> Value {
    json!({"destination": {"id": d.id, "name": d.name, "url": d.url, "events": d.events, "enabled": d.enabled}})
}

pub async fn create(pool: &SqlitePool, actor: &Actor, d: &DestinationRecord) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO destinations (id, platform_id, project_id, name, url, events, enabled, content_type, headers, token, secrets, created, updated) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

pub async fn update(pool: &SqlitePool, actor: &Actor, d: &DestinationRecord) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE destinations SET name = ?, url = ?, events = ?, enabled = ?, content_type = ?, headers = ?, token = ?, secrets = ?, \
         disabled_reason = ?, failing_since = ?, paused_until = ?, consecutive_failures = ?, updated = ? WHERE id = ?",
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

pub async fn delete(pool: &SqlitePool, actor: &Actor, id: &str) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let Some(row) = sqlx::query("DELETE FROM destinations WHERE id = ? RETURNING *")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(false);
    };
    let d = destination(&row)?;
    sqlx::query("DELETE FROM outbox WHERE destination_id = ? AND status = 'PENDING'")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit_change(&mut tx, actor, &d, "destination.deleted").await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn get(pool: &SqlitePool, id: &str) -> StoreResult<Option<DestinationRecord>> {
    sqlx::query("SELECT * FROM destinations WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| destination(&r))
        .transpose()
}

pub async fn list(pool: &SqlitePool) -> StoreResult<Vec<DestinationRecord>> {
    sqlx::query("SELECT * FROM destinations ORDER BY id")
        .fetch_all(pool)
        .await?
        .iter()
        .map(destination)
        .collect()
}

/// Claims up to `per_destination` consecutive due entries from the head of up to
/// `destinations` destinations' queues. An entry behind the head is taken only while every
/// entry before it is taken too, so each destination still receives its events in order.
pub async fn claim(
    pool: &SqlitePool,
    destinations: u32,
    per_destination: u32,
    lease_ms: i64,
) -> StoreResult<Vec<DueDelivery>> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut tx = pool.begin().await?;
    let heads = sqlx::query(
        "SELECT d.*, (SELECT MIN(o.audit_seq) FROM outbox o WHERE o.destination_id = d.id AND o.status = 'PENDING') AS head_seq \
         FROM destinations d WHERE d.enabled = TRUE AND (d.paused_until IS NULL OR d.paused_until <= ?)",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let mut claimed = Vec::new();
    let mut ids = Vec::new();
    let mut taken_destinations = 0;
    for head in &heads {
        let Some(head_seq) = head.try_get::<Option<i64>, _>("head_seq")? else {
            continue;
        };
        if taken_destinations == destinations {
            break;
        }
        let entries = sqlx::query(
            "SELECT id, payload, attempts, next_attempt, lease_expires FROM outbox \
             WHERE destination_id = ? AND status = 'PENDING' AND audit_seq >= ? ORDER BY audit_seq LIMIT ?",
        )
        .bind(head.try_get::<String, _>("id")?)
        .bind(head_seq)
        .bind(i64::from(per_destination.max(1)))
        .fetch_all(&mut *tx)
        .await?;
        let due = entries.iter().take_while(|e| {
            e.get::<i64, _>("next_attempt") <= now
                && e.get::<Option<i64>, _>("lease_expires")
                    .is_none_or(|l| l < now)
        });
        let mut any = false;
        for entry in due {
            let outbox_id: String = entry.try_get("id")?;
            ids.push(outbox_id.clone());
            claimed.push(DueDelivery {
                outbox_id,
                payload: entry.try_get("payload")?,
                attempts: entry.try_get("attempts")?,
                destination: destination(head)?,
            });
            any = true;
        }
        taken_destinations += u32::from(any);
    }
    for chunk in ids.chunks(400) {
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE outbox SET lease_expires = ");
        q.push_bind(now + lease_ms).push(" WHERE id IN (");
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(id);
        }
        q.push(")");
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Records attempts in one transaction: attempt rows, outbox moves, each destination's health
/// (its last result wins) and audit events for destinations this batch disabled. `released`
/// entries lose their lease without an attempt.
pub async fn finish_batch(
    pool: &SqlitePool,
    results: &[DeliveryResult],
    released: &[String],
) -> StoreResult<()> {
    let now = now_text();
    let mut tx = pool.begin().await?;
    for chunk in results.chunks(200) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO deliveries (id, destination_id, outbox_id, attempt, status_code, duration_ms, error, response_body, created) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(new_id())
                .push_bind(&r.destination_id)
                .push_bind(&r.outbox_id)
                .push_bind(r.attempt)
                .push_bind(r.status_code.map(i64::from))
                .push_bind(r.duration_ms)
                .push_bind(&r.error)
                .push_bind(&r.response_body)
                .push_bind(&now);
        });
        q.build().execute(&mut *tx).await?;
    }
    // Delivered entries move together; retries and failures (rare) one by one.
    let (delivered, other): (Vec<&DeliveryResult>, Vec<&DeliveryResult>) = results
        .iter()
        .partition(|r| r.next == DeliveryNext::Delivered);
    for chunk in delivered.chunks(400) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "UPDATE outbox SET status = 'DELIVERED', attempts = attempts + 1, next_attempt = 0, lease_expires = NULL WHERE id IN (",
        );
        let mut sep = q.separated(", ");
        for r in chunk {
            sep.push_bind(&r.outbox_id);
        }
        q.push(")");
        q.build().execute(&mut *tx).await?;
    }
    for r in other {
        let (status, next) = match r.next {
            DeliveryNext::Delivered => ("DELIVERED", 0),
            DeliveryNext::Retry { at_ms } => ("PENDING", at_ms),
            DeliveryNext::Failed => ("FAILED", 0),
        };
        sqlx::query("UPDATE outbox SET status = ?, attempts = ?, next_attempt = ?, lease_expires = NULL WHERE id = ?")
            .bind(status)
            .bind(r.attempt)
            .bind(next)
            .bind(&r.outbox_id)
            .execute(&mut *tx)
            .await?;
    }
    for chunk in released.chunks(400) {
        let mut q =
            QueryBuilder::<Sqlite>::new("UPDATE outbox SET lease_expires = NULL WHERE id IN (");
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(id);
        }
        q.push(")");
        q.build().execute(&mut *tx).await?;
    }
    let mut last_by_destination: Vec<&DeliveryResult> = Vec::new();
    for r in results.iter().rev() {
        if !last_by_destination
            .iter()
            .any(|l| l.destination_id == r.destination_id)
        {
            last_by_destination.push(r);
        }
    }
    for r in last_by_destination {
        sqlx::query(
            "UPDATE destinations SET consecutive_failures = ?, failing_since = ?, paused_until = ?, \
             enabled = CASE WHEN ? IS NULL THEN enabled ELSE FALSE END, disabled_reason = COALESCE(?, disabled_reason) WHERE id = ?",
        )
        .bind(r.consecutive_failures)
        .bind(&r.failing_since)
        .bind(r.paused_until)
        .bind(&r.disable)
        .bind(&r.disable)
        .bind(&r.destination_id)
        .execute(&mut *tx)
        .await?;
        if let Some(reason) = &r.disable
            && let Some(row) = sqlx::query("SELECT * FROM destinations WHERE id = ?")
                .bind(&r.destination_id)
                .fetch_optional(&mut *tx)
                .await?
        {
            let d = destination(&row)?;
            let mut data = audit_data(&d);
            data["reason"] = json!(reason);
            let draft = AuditDraft::new(
                &d.platform_id,
                Some(&d.project_id),
                &Actor::system(),
                "destination.disabled",
                data,
            );
            audit::append(&mut tx, &[draft]).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

pub async fn deliveries(
    pool: &SqlitePool,
    destination_id: &str,
    limit: u32,
) -> StoreResult<Vec<DeliveryRecord>> {
    let rows =
        sqlx::query("SELECT * FROM deliveries WHERE destination_id = ? ORDER BY id DESC LIMIT ?")
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

pub async fn redeliver(
    pool: &SqlitePool,
    destination_id: &str,
    selection: &Redelivery,
) -> StoreResult<u64> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut q = QueryBuilder::<Sqlite>::new(
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
    Ok(q.build().execute(pool).await?.rows_affected())
}
