//! Event destinations: settings, the delivery outbox (shared by every process on PostgreSQL),
//! and attempt records. Written once for both backends.
//!
//! Ordering across processes: a claim locks the rows of the destinations it serves
//! ([`Dialect::skip_locked`](super::sql::Dialect::skip_locked): concurrent claimers pass over
//! each other's destinations instead of waiting) and reads their queues only after holding the
//! lock, so it sees every earlier claim's leases. An entry is never handed out while another
//! process holds a valid lease on it, and a destination's events are in flight with one process
//! at a time, in event order. Recording results locks the same rows in id order first.

use super::audit::{self, AuditDraft};
use super::rows::{delivery_record, destination, in_list, lock_in_order};
use super::sql::{CHUNK, Col, Conn, Param, Ty, params};
use super::{
    Actor, AuditAction, DeliveryNext, DeliveryRecord, DeliveryResult, DestinationBacklog,
    DestinationRecord, DueDelivery, Redelivery, StoreError, StoreResult, epoch_ms, new_id,
    now_text,
};
use serde_json::{Value, json};

fn audit_data(d: &DestinationRecord) -> Value {
    json!({"destination": {"id": d.id, "name": d.name, "url": d.url, "events": d.events, "enabled": d.enabled}})
}

/// Appends the audit event of a change to a destination, in the change's transaction.
async fn audit_change(
    c: &mut dyn Conn,
    actor: &Actor,
    d: &DestinationRecord,
    action: AuditAction,
) -> StoreResult<()> {
    let draft = AuditDraft::new(
        &d.platform_id,
        Some(&d.project_id),
        actor,
        action,
        audit_data(d),
    );
    audit::append(c, &[draft]).await
}

/// The settings columns of a destination, in the order `create` and `update` write them: name,
/// url, events, enabled, content_type, headers, token, secrets, disabled_reason, failing_since,
/// paused_until, consecutive_failures, updated.
fn settings(d: &DestinationRecord) -> Vec<Param> {
    params![
        &d.name,
        &d.url,
        json!(d.events).to_string(),
        d.enabled,
        &d.content_type,
        json!(d.headers).to_string(),
        &d.token,
        json!(d.secrets).to_string(),
        &d.disabled_reason,
        &d.failing_since,
        d.paused_until,
        d.consecutive_failures,
        &d.updated,
    ]
}

pub async fn create(c: &mut dyn Conn, actor: &Actor, d: &DestinationRecord) -> StoreResult<()> {
    let mut args = params![
        &d.id,
        &d.platform_id,
        &d.project_id,
        d.scope.as_str(),
        &d.created
    ];
    args.extend(settings(d));
    c.execute(
        "INSERT INTO destinations (id, platform_id, project_id, scope, created, name, url, events, enabled, content_type, \
         headers, token, secrets, disabled_reason, failing_since, paused_until, consecutive_failures, updated) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        args,
    )
    .await?;
    audit_change(c, actor, d, AuditAction::DestinationCreated).await
}

pub async fn update(c: &mut dyn Conn, actor: &Actor, d: &DestinationRecord) -> StoreResult<()> {
    let mut args = settings(d);
    args.push(Param::from(&d.id));
    let done = c
        .execute(
            "UPDATE destinations SET name = ?, url = ?, events = ?, enabled = ?, content_type = ?, headers = ?, \
             token = ?, secrets = ?, disabled_reason = ?, failing_since = ?, paused_until = ?, \
             consecutive_failures = ?, updated = ? WHERE id = ?",
            args,
        )
        .await?;
    if done == 0 {
        return Err(StoreError::NotFound(format!("destination {}", d.id)));
    }
    audit_change(c, actor, d, AuditAction::DestinationUpdated).await
}

/// Deletes a destination and its pending deliveries (delivered and failed ones stay as history).
pub async fn delete(c: &mut dyn Conn, actor: &Actor, id: &str) -> StoreResult<bool> {
    let Some(row) = c
        .query_opt(
            "DELETE FROM destinations WHERE id = ? RETURNING *",
            params![id],
        )
        .await?
    else {
        return Ok(false);
    };
    let d = destination(&row)?;
    c.execute(
        "DELETE FROM outbox WHERE destination_id = ? AND status = 'PENDING'",
        params![id],
    )
    .await?;
    audit_change(c, actor, &d, AuditAction::DestinationDeleted).await?;
    Ok(true)
}

/// Frees every delivery lease: for a store only this process can open (SQLite), whose earlier
/// owner died, so its claimed entries go out at once instead of after their lease.
pub async fn release_all_leases(c: &mut dyn Conn) -> StoreResult<u64> {
    c.execute(
        "UPDATE outbox SET lease_expires = NULL WHERE status = 'PENDING' AND lease_expires IS NOT NULL",
        params![],
    )
    .await
}

pub async fn get(c: &mut dyn Conn, id: &str) -> StoreResult<Option<DestinationRecord>> {
    c.query_opt("SELECT * FROM destinations WHERE id = ?", params![id])
        .await?
        .map(|r| destination(&r))
        .transpose()
}

/// Destinations by id; `only` limits the list to the PROJECT destinations of those projects
/// (what a project admin manages), `None` is every destination.
pub async fn list(
    c: &mut dyn Conn,
    only: Option<&[String]>,
) -> StoreResult<Vec<DestinationRecord>> {
    let (sql, args) = match only {
        None => (
            "SELECT * FROM destinations ORDER BY id".to_string(),
            params![],
        ),
        Some(projects) => {
            let (cond, args) = in_list("project_id", projects);
            (
                format!(
                    "SELECT * FROM destinations WHERE scope = 'PROJECT' AND {cond} ORDER BY id"
                ),
                args,
            )
        }
    };
    c.query(&sql, args).await?.iter().map(destination).collect()
}

/// The first `destinations` destinations by id with their PENDING outbox entries counted up
/// to `max_counted` and their oldest PENDING entry's creation time: two lookups per
/// destination on the `outbox_pending` index, each bounded, so a scrape costs the same whatever
/// the backlog.
pub async fn backlog(
    c: &mut dyn Conn,
    destinations: u32,
    max_counted: u32,
) -> StoreResult<Vec<DestinationBacklog>> {
    let rows = c
        .query(
            "SELECT d.id, d.enabled, d.paused_until, \
               (SELECT COUNT(*) FROM (SELECT 1 FROM outbox o \
                  WHERE o.destination_id = d.id AND o.status = 'PENDING' LIMIT ?) AS p) AS pending, \
               (SELECT o.created FROM outbox o WHERE o.destination_id = d.id AND o.status = 'PENDING' \
                  ORDER BY o.audit_seq LIMIT 1) AS oldest \
             FROM destinations d ORDER BY d.id LIMIT ?",
            params![i64::from(max_counted), i64::from(destinations)],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let oldest = row.opt_text("oldest")?;
            Ok(DestinationBacklog {
                id: row.text("id")?,
                pending: row.int("pending")?,
                oldest_pending_ms: oldest
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.timestamp_millis()),
                enabled: row.bool("enabled")?,
                paused_until: row.opt_int("paused_until")?,
            })
        })
        .collect()
}

/// Claims up to `per_destination` consecutive due entries from the head of up to
/// `destinations` destinations' queues, longest-waiting head first. An entry behind the head is
/// taken only while every entry before it is taken too, so each destination receives its events
/// in order.
pub async fn claim(
    c: &mut dyn Conn,
    destinations: u32,
    per_destination: u32,
    lease_ms: i64,
) -> StoreResult<Vec<DueDelivery>> {
    if destinations == 0 {
        return Ok(Vec::new());
    }
    let now = epoch_ms();
    // Destinations whose queue head is due and free. The head check here only avoids locking
    // idle destinations; it is repeated below under the lock.
    let head = "(SELECT MIN(o.audit_seq) FROM outbox o WHERE o.destination_id = d.id AND o.status = 'PENDING')";
    let sql = format!(
        "SELECT d.* FROM destinations d \
         WHERE d.enabled = TRUE AND (d.paused_until IS NULL OR d.paused_until <= ?) \
         AND EXISTS (SELECT 1 FROM outbox h WHERE h.destination_id = d.id AND h.status = 'PENDING' \
                     AND h.audit_seq = {head} AND h.next_attempt <= ? \
                     AND (h.lease_expires IS NULL OR h.lease_expires < ?)) \
         ORDER BY {head} LIMIT ?{lock}",
        lock = c.dialect().skip_locked_of("d")
    );
    let heads = c.query(&sql, params![now, now, now, destinations]).await?;
    let mut claimed = Vec::new();
    for row in &heads {
        let record = destination(row)?;
        let entries = c
            .query(
                "SELECT id, payload, attempts, next_attempt, lease_expires FROM outbox \
                 WHERE destination_id = ? AND status = 'PENDING' ORDER BY audit_seq LIMIT ?",
                params![&record.id, per_destination.max(1)],
            )
            .await?;
        for entry in &entries {
            let due = entry.int("next_attempt")? <= now
                && entry.opt_int("lease_expires")?.is_none_or(|l| l < now);
            if !due {
                // Not due or held: nothing behind it may go out before it.
                break;
            }
            claimed.push(DueDelivery {
                outbox_id: entry.text("id")?,
                payload: entry.text("payload")?,
                attempts: entry.int("attempts")?,
                destination: record.clone(),
            });
        }
    }
    let taken: Vec<String> = claimed.iter().map(|d| d.outbox_id.clone()).collect();
    for chunk in taken.chunks(CHUNK) {
        let (cond, mut args) = in_list("id", chunk);
        args.insert(0, Param::from(now + lease_ms));
        c.execute(
            &format!("UPDATE outbox SET lease_expires = ? WHERE {cond}"),
            args,
        )
        .await?;
    }
    Ok(claimed)
}

const ATTEMPT_COLUMNS: &[Col] = &[
    Col("id", Ty::Text),
    Col("destination_id", Ty::Text),
    Col("outbox_id", Ty::Text),
    Col("attempt", Ty::Int),
    Col("status_code", Ty::Int),
    Col("duration_ms", Ty::Real),
    Col("error", Ty::Text),
    Col("response_body", Ty::Text),
    Col("created", Ty::Text),
];

const MOVE_COLUMNS: &[Col] = &[
    Col("id", Ty::Text),
    Col("status", Ty::Text),
    Col("attempt", Ty::Int),
    Col("next_attempt", Ty::Int),
];

/// Records attempts in one transaction: attempt rows, outbox moves, each destination's health
/// (its last result wins) and a `destination.disabled` audit event for each destination the
/// batch disabled. `released` entries lose their lease without an attempt.
pub async fn finish(
    c: &mut dyn Conn,
    results: &[DeliveryResult],
    released: &[String],
) -> StoreResult<()> {
    if results.is_empty() && released.is_empty() {
        return Ok(());
    }
    let now = now_text();
    let mut destination_ids: Vec<String> =
        results.iter().map(|r| r.destination_id.clone()).collect();
    destination_ids.sort_unstable();
    destination_ids.dedup();
    lock_in_order(c, "destinations", &destination_ids).await?;
    let mut attempts = Vec::with_capacity(results.len());
    let mut moves = Vec::with_capacity(results.len());
    for r in results {
        let (status, next) = match r.next {
            DeliveryNext::Delivered => ("DELIVERED", 0),
            DeliveryNext::Retry { at_ms } => ("PENDING", at_ms),
            DeliveryNext::Failed => ("FAILED", 0),
        };
        attempts.push(vec![
            Param::from(new_id()),
            Param::from(&r.destination_id),
            Param::from(&r.outbox_id),
            Param::from(r.attempt),
            Param::from(r.status_code.map(i64::from)),
            Param::from(r.duration_ms),
            Param::from(&r.error),
            Param::from(&r.response_body),
            Param::from(&now),
        ]);
        moves.push(vec![
            Param::from(&r.outbox_id),
            Param::from(status),
            Param::from(r.attempt),
            Param::from(next),
        ]);
    }
    c.bulk(
        "INSERT INTO deliveries (id, destination_id, outbox_id, attempt, status_code, duration_ms, error, response_body, created) \
         SELECT v.id, v.destination_id, v.outbox_id, v.attempt, v.status_code, v.duration_ms, v.error, v.response_body, v.created \
         FROM {rows} WHERE TRUE",
        ATTEMPT_COLUMNS,
        attempts,
    )
    .await?;
    // A delivered entry counts one more attempt; others take the reported one.
    c.bulk(
        "UPDATE outbox SET status = v.status, \
         attempts = CASE WHEN v.status = 'DELIVERED' THEN outbox.attempts + 1 ELSE v.attempt END, \
         next_attempt = v.next_attempt, lease_expires = NULL \
         FROM {rows} WHERE outbox.id = v.id",
        MOVE_COLUMNS,
        moves,
    )
    .await?;
    for chunk in released.chunks(CHUNK) {
        let (cond, args) = in_list("id", chunk);
        c.execute(
            &format!("UPDATE outbox SET lease_expires = NULL WHERE {cond}"),
            args,
        )
        .await?;
    }
    let mut drafts = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for r in results.iter().rev() {
        if done.contains(&r.destination_id.as_str()) {
            continue;
        }
        done.push(&r.destination_id);
        let updated = c
            .query_opt(
                "UPDATE destinations SET consecutive_failures = ?, failing_since = ?, paused_until = ?, \
                 enabled = CASE WHEN ? IS NULL THEN enabled ELSE FALSE END, \
                 disabled_reason = COALESCE(?, disabled_reason) WHERE id = ? RETURNING *",
                params![
                    r.consecutive_failures,
                    &r.failing_since,
                    r.paused_until,
                    &r.disable,
                    &r.disable,
                    &r.destination_id,
                ],
            )
            .await?;
        if let (Some(reason), Some(row)) = (&r.disable, updated) {
            let d = destination(&row)?;
            let mut data = audit_data(&d);
            data["reason"] = json!(reason);
            drafts.push(AuditDraft::new(
                &d.platform_id,
                Some(&d.project_id),
                &Actor::system(),
                AuditAction::DestinationDisabled,
                data,
            ));
        }
    }
    audit::append(c, &drafts).await
}

/// Attempts for a destination, newest first.
pub async fn deliveries(
    c: &mut dyn Conn,
    destination_id: &str,
    limit: u32,
) -> StoreResult<Vec<DeliveryRecord>> {
    c.query(
        "SELECT * FROM deliveries WHERE destination_id = ? ORDER BY id DESC LIMIT ?",
        params![destination_id, limit],
    )
    .await?
    .iter()
    .map(delivery_record)
    .collect()
}

/// Most audit events one redelivery may queue: a range wider than this is refused (narrow it
/// and call again), so one call cannot flood the outbox or hold the write lock for long.
pub const MAX_REDELIVER_EVENTS: i64 = 10_000;

/// Queues events for a destination again, delivered or not, so a receiver that lost data can
/// be backfilled:
/// - `event_id` names an audit event (its `id`), or an outbox entry (the `webhook-id` a
///   delivery carried, as before);
/// - `created_after` / `created_before` select audit events by time (`>=` / `<`);
/// - with none of them, every FAILED entry of the destination is queued again.
///
/// Only events the destination receives are queued: its `events` filter, and for a PROJECT
/// destination its project's events. An event that already has an outbox entry here reuses it
/// (same `webhook-id`, so the receiver can deduplicate), unless it is pending already; one that
/// never had one (created before the destination, or while it was disabled) gets one now.
/// Returns how many entries were queued.
pub async fn redeliver(
    c: &mut dyn Conn,
    destination_id: &str,
    selection: &Redelivery,
) -> StoreResult<u64> {
    let now = epoch_ms();
    // Under the destination's lock, like claims: a claim never reads the queue half-changed.
    let lock = c.dialect().for_update();
    let Some(row) = c
        .query_opt(
            &format!("SELECT id, events, scope, project_id FROM destinations WHERE id = ?{lock}"),
            params![destination_id],
        )
        .await?
    else {
        return Err(StoreError::NotFound(format!(
            "destination {destination_id}"
        )));
    };
    if selection.event_id.is_none()
        && selection.created_after.is_none()
        && selection.created_before.is_none()
    {
        return c
            .execute(
                "UPDATE outbox SET status = 'PENDING', attempts = 0, lease_expires = NULL, \
                 next_attempt = ? WHERE status = 'FAILED' AND destination_id = ?",
                params![now, destination_id],
            )
            .await;
    }
    let mut queued = 0;
    // An outbox entry named by its id (the webhook-id), as redelivery always accepted.
    if let Some(id) = &selection.event_id {
        queued += c
            .execute(
                "UPDATE outbox SET status = 'PENDING', attempts = 0, lease_expires = NULL, \
                 next_attempt = ? WHERE destination_id = ? AND id = ? AND status <> 'PENDING'",
                params![now, destination_id, id],
            )
            .await?;
    }
    let mut filter = String::from(" WHERE TRUE");
    let mut args: Vec<Param> = Vec::new();
    if let Some(id) = &selection.event_id {
        filter.push_str(" AND id = ?");
        args.push(Param::from(id));
    }
    if let Some(after) = &selection.created_after {
        filter.push_str(" AND created >= ?");
        args.push(Param::from(after));
    }
    if let Some(before) = &selection.created_before {
        filter.push_str(" AND created < ?");
        args.push(Param::from(before));
    }
    let events: Vec<String> = serde_json::from_str(&row.text("events")?).unwrap_or_default();
    if !events.is_empty() {
        let (cond, values) = in_list("action", &events);
        filter.push_str(&format!(" AND {cond}"));
        args.extend(values);
    }
    if row.parse::<super::DestinationScope>("scope")? == super::DestinationScope::Project {
        filter.push_str(" AND project_id = ?");
        args.push(Param::from(row.text("project_id")?));
    }
    let count = c
        .query_opt(
            &format!("SELECT COUNT(*) AS n FROM audit_events{filter}"),
            args.clone(),
        )
        .await?
        .map(|r| r.int("n"))
        .transpose()?
        .unwrap_or(0);
    if count > MAX_REDELIVER_EVENTS {
        return Err(StoreError::Conflict(format!(
            "createdAfter/createdBefore: the range holds {count} events, more than the \
             {MAX_REDELIVER_EVENTS} one redelivery may queue: narrow it and call again"
        )));
    }
    let selected = c
        .query(
            &format!("SELECT seq, body, hash FROM audit_events{filter} ORDER BY seq"),
            args,
        )
        .await?;
    let created = now_text();
    for event in selected {
        let seq = event.int("seq")?;
        // What the stream sends (`seq` and `chainHash` with the envelope), also for an entry
        // queued before the stream carried them.
        let payload = audit::streamed_payload(seq, &event.text("body")?, &event.text("hash")?)?;
        let existing = c
            .query_opt(
                "SELECT id, status FROM outbox WHERE destination_id = ? AND audit_seq = ? \
                 ORDER BY id LIMIT 1",
                params![destination_id, seq],
            )
            .await?;
        match existing {
            Some(entry) if entry.text("status")? == "PENDING" => {}
            Some(entry) => {
                queued += c
                    .execute(
                        "UPDATE outbox SET status = 'PENDING', attempts = 0, \
                         lease_expires = NULL, next_attempt = ?, payload = ? WHERE id = ?",
                        params![now, &payload, entry.text("id")?],
                    )
                    .await?;
            }
            None => {
                queued += c
                    .execute(
                        "INSERT INTO outbox (id, destination_id, audit_seq, payload, status, \
                         attempts, next_attempt, created) VALUES (?, ?, ?, ?, 'PENDING', 0, ?, ?)",
                        params![new_id(), destination_id, seq, &payload, now, &created],
                    )
                    .await?;
            }
        }
    }
    Ok(queued)
}
