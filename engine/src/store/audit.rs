//! The audit log, written once for both backends: appending inside the transaction of each
//! change (hash chain + outbox entries), and reading it back.
//!
//! Every event carries the SHA-256 of its predecessor's hash and its own envelope, so editing,
//! deleting or reordering a row breaks the chain at that row. The chain head (last `seq` and
//! hash) lives in the one-row `audit_chain_head` table on both backends: it outlives retention, so
//! after old events are deleted the chain and `seq` go on from where they were instead of
//! restarting at the genesis hash and `seq` 1. Each append reads the head with
//! [`Dialect::for_update`](super::sql::Dialect::for_update) (PostgreSQL: several processes append,
//! so the row lock serializes them until commit; SQLite: its one writer is alone) and takes `seq`
//! from it, so `seq` is gap-free and in commit order, which is what makes it a safe pagination
//! cursor. Callers append as the last write of their transaction so the lock is held only for
//! the commit.

use super::rows::{in_list, paginate, push_created_range, push_cursor};
use super::sql::{Col, Conn, Param, Ty, params};
use super::{
    Actor, AuditAction, AuditFilter, AuditRow, DestinationScope, NewEvent, Page, Scope, StoreError,
    StoreResult, epoch_ms, new_id, now_text,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Hash of the (virtual) event before the first one.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit event about to be written.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    pub platform_id: String,
    pub project_id: Option<String>,
    pub actor: Actor,
    pub action: AuditAction,
    pub data: Value,
}

impl AuditDraft {
    pub fn new(
        platform_id: &str,
        project_id: Option<&str>,
        actor: &Actor,
        action: AuditAction,
        data: Value,
    ) -> AuditDraft {
        AuditDraft {
            platform_id: platform_id.to_string(),
            project_id: project_id.map(str::to_string),
            actor: actor.clone(),
            action,
            data,
        }
    }
}

/// What a `flow.run.started` audit event says about a run.
pub struct RunStarted<'a> {
    pub scope: &'a Scope,
    pub run_id: &'a str,
    pub started: &'a str,
    pub environment: &'a str,
    pub flow_id: &'a str,
    pub flow_version: i64,
    pub flow_name: Option<&'a String>,
    pub attempt: i64,
}

impl RunStarted<'_> {
    /// The audit event, in Activepieces' shape; written when a run is claimed, or accepted
    /// already claimed by the process that received it.
    pub fn draft(&self) -> AuditDraft {
        let data = json!({"flowRun": {
            "id": self.run_id,
            "startTime": self.started,
            "environment": self.environment,
            "flowId": self.flow_id,
            "flowVersionId": self.flow_version.to_string(),
            "flowDisplayName": self.flow_name,
            "status": "RUNNING",
            "attempt": self.attempt,
        }});
        AuditDraft::new(
            &self.scope.platform_id,
            Some(&self.scope.project_id),
            &Actor::system(),
            AuditAction::FlowRunStarted,
            data,
        )
    }
}

/// The `flow.run.started` events of the runs their receiver took at intake (`lease` set), given
/// the flows' names by id.
pub fn started_at_intake(
    events: &[&NewEvent],
    started: &str,
    names: &HashMap<String, String>,
) -> Vec<AuditDraft> {
    events
        .iter()
        .filter(|e| e.lease.is_some())
        .map(|e| {
            RunStarted {
                scope: &e.scope,
                run_id: &e.run_id,
                started,
                environment: e.environment.as_str(),
                flow_id: &e.flow_id,
                flow_version: e.flow_version,
                flow_name: names.get(&e.flow_id),
                attempt: 1,
            }
            .draft()
        })
        .collect()
}

/// `sha256(prev_hash || body)` as hex.
pub fn chain_hash(prev_hash: &str, body: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(body.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Activepieces envelope for a draft; the chain hashes exactly these bytes.
pub(super) fn envelope(id: &str, created: &str, draft: &AuditDraft) -> Value {
    let mut map = Map::new();
    map.insert("id".into(), json!(id));
    map.insert("created".into(), json!(created));
    map.insert("updated".into(), json!(created));
    map.insert("platformId".into(), json!(draft.platform_id));
    map.insert("projectId".into(), json!(draft.project_id));
    map.insert("userId".into(), json!(draft.actor.user_id));
    map.insert("userEmail".into(), json!(draft.actor.user_email));
    map.insert("ip".into(), json!(draft.actor.ip));
    map.insert("action".into(), json!(draft.action.as_str()));
    map.insert("data".into(), draft.data.clone());
    Value::Object(map)
}

const AUDIT_COLUMNS: &[Col] = &[
    Col("seq", Ty::Int),
    Col("id", Ty::Text),
    Col("created", Ty::Text),
    Col("platform_id", Ty::Text),
    Col("project_id", Ty::Text),
    Col("user_id", Ty::Text),
    Col("action", Ty::Text),
    Col("body", Ty::Text),
    Col("prev_hash", Ty::Text),
    Col("hash", Ty::Text),
];

const OUTBOX_COLUMNS: &[Col] = &[
    Col("id", Ty::Text),
    Col("destination_id", Ty::Text),
    Col("audit_seq", Ty::Int),
    Col("payload", Ty::Text),
    Col("next_attempt", Ty::Int),
    Col("created", Ty::Text),
];

/// Appends `drafts` in order within the caller's transaction, with the outbox entries of the
/// destinations whose filter matches.
pub async fn append(c: &mut dyn Conn, drafts: &[AuditDraft]) -> StoreResult<()> {
    if drafts.is_empty() {
        return Ok(());
    }
    let lock = c.dialect().for_update();
    let head = c
        .query_opt(
            &format!("SELECT seq, hash FROM audit_chain_head WHERE id = 1{lock}"),
            params![],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("the audit chain head row is missing".into()))?;
    let mut seq = head.int("seq")?;
    let mut prev = head.text("hash")?;
    // Taken under the head's lock, so `created` never goes backwards along the chain.
    let created = now_text();
    let mut rows = Vec::with_capacity(drafts.len());
    let mut written = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let id = new_id();
        let body = envelope(&id, &created, draft).to_string();
        let hash = chain_hash(&prev, &body);
        seq += 1;
        written.push((seq, draft.action, draft.project_id.clone(), body.clone()));
        rows.push(vec![
            Param::from(seq),
            Param::from(id),
            Param::from(&created),
            Param::from(&draft.platform_id),
            Param::from(&draft.project_id),
            Param::from(&draft.actor.user_id),
            Param::from(draft.action.as_str()),
            Param::from(body),
            Param::from(std::mem::replace(&mut prev, hash.clone())),
            Param::from(hash),
        ]);
    }
    c.bulk(
        "INSERT INTO audit_events (seq, id, created, platform_id, project_id, user_id, action, body, prev_hash, hash) \
         SELECT v.seq, v.id, v.created, v.platform_id, v.project_id, v.user_id, v.action, v.body, v.prev_hash, v.hash \
         FROM {rows} WHERE TRUE",
        AUDIT_COLUMNS,
        rows,
    )
    .await?;
    c.execute(
        "UPDATE audit_chain_head SET seq = ?, hash = ? WHERE id = 1",
        params![seq, prev],
    )
    .await?;
    enqueue_deliveries(c, &written, &created).await
}

/// Writes an outbox entry for every enabled destination whose filter matches each event, in
/// the same transaction as the events themselves.
async fn enqueue_deliveries(
    c: &mut dyn Conn,
    written: &[(i64, AuditAction, Option<String>, String)],
    created: &str,
) -> StoreResult<()> {
    let destinations = c
        .query(
            "SELECT id, events, scope, project_id FROM destinations WHERE enabled = TRUE",
            params![],
        )
        .await?;
    if destinations.is_empty() {
        return Ok(());
    }
    // (id, actions, the project a PROJECT destination is limited to)
    let mut filters: Vec<(String, Vec<String>, Option<String>)> =
        Vec::with_capacity(destinations.len());
    for row in &destinations {
        // An unreadable filter delivers everything rather than failing every change.
        let events: Vec<String> = serde_json::from_str(&row.text("events")?).unwrap_or_default();
        let project = match row.parse::<DestinationScope>("scope")? {
            DestinationScope::Platform => None,
            DestinationScope::Project => Some(row.text("project_id")?),
        };
        filters.push((row.text("id")?, events, project));
    }
    let now = epoch_ms();
    let mut entries = Vec::new();
    for (seq, action, event_project, body) in written {
        for (destination, events, only_project) in &filters {
            let in_scope = only_project
                .as_ref()
                .is_none_or(|p| event_project.as_ref() == Some(p));
            if in_scope && (events.is_empty() || events.iter().any(|e| e == action.as_str())) {
                entries.push(vec![
                    Param::from(new_id()),
                    Param::from(destination),
                    Param::from(*seq),
                    Param::from(body),
                    Param::from(now),
                    Param::from(created),
                ]);
            }
        }
    }
    c.bulk(
        "INSERT INTO outbox (id, destination_id, audit_seq, payload, status, attempts, next_attempt, created) \
         SELECT v.id, v.destination_id, v.audit_seq, v.payload, 'PENDING', 0, v.next_attempt, v.created \
         FROM {rows} WHERE TRUE",
        OUTBOX_COLUMNS,
        entries,
    )
    .await?;
    Ok(())
}

/// Audit envelopes, newest first, paginated by `seq`.
pub async fn list(c: &mut dyn Conn, filter: &AuditFilter) -> StoreResult<Page<Value>> {
    let mut sql = String::from("SELECT seq, body FROM audit_events WHERE TRUE");
    let mut args: Vec<Param> = Vec::new();
    for (column, values) in [
        ("action", &filter.actions),
        ("project_id", &filter.project_ids),
    ] {
        if !values.is_empty() {
            let (cond, values) = in_list(column, values);
            sql.push_str(&format!(" AND {cond}"));
            args.extend(values);
        }
    }
    if let Some(user) = &filter.user_id {
        sql.push_str(" AND user_id = ?");
        args.push(Param::from(user));
    }
    push_created_range(
        &mut sql,
        &mut args,
        filter.created_after.as_ref(),
        filter.created_before.as_ref(),
    );
    let key = match &filter.cursor {
        Some(cursor) => Some((
            cursor,
            Param::from(cursor.key().parse::<i64>().map_err(|_| {
                StoreError::Conflict("cursor: not a cursor this server issued".into())
            })?),
        )),
        None => None,
    };
    let backwards = push_cursor(&mut sql, &mut args, "seq", key, filter.limit);
    let rows = c.query(&sql, args).await?;
    let items = rows
        .iter()
        .map(|r| Ok((r.int("seq")?, r.json("body")?)))
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
    c: &mut dyn Conn,
    before: &str,
    limit: u32,
) -> StoreResult<Vec<(i64, String, String)>> {
    c.query(
        "SELECT seq, created, body FROM audit_events WHERE created < ? ORDER BY seq LIMIT ?",
        params![before, limit],
    )
    .await?
    .iter()
    .map(|r| Ok((r.int("seq")?, r.text("created")?, r.text("body")?)))
    .collect()
}

/// Deletes events up to and including `seq`. The chain head is kept, so later appends still
/// link to the last hash.
pub async fn delete_through(c: &mut dyn Conn, seq: i64) -> StoreResult<u64> {
    c.execute("DELETE FROM audit_events WHERE seq <= ?", params![seq])
        .await
}

/// Rows in chain order after `after_seq`, for verification.
pub async fn chain(c: &mut dyn Conn, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRow>> {
    c.query(
        "SELECT seq, id, body, prev_hash, hash FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?",
        params![after_seq, limit],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(AuditRow {
            seq: r.int("seq")?,
            id: r.text("id")?,
            body: r.text("body")?,
            prev_hash: r.text("prev_hash")?,
            hash: r.text("hash")?,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_hash_depends_on_both_links() {
        let a = chain_hash(GENESIS, "{}");
        assert_eq!(a.len(), 64);
        assert_ne!(a, chain_hash(GENESIS, "{ }"));
        assert_ne!(a, chain_hash(&a, "{}"));
    }
}
