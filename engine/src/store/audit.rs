//! Appending to the audit log inside a store transaction, with the hash chain: every event
//! carries the SHA-256 of its predecessor's hash and its own envelope, so editing, deleting or
//! reordering a row breaks the chain at that row.

use super::{Actor, StoreResult};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

/// Hash of the (virtual) event before the first one.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit event about to be written.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    pub platform_id: String,
    pub project_id: Option<String>,
    pub actor: Actor,
    pub action: String,
    pub data: Value,
}

impl AuditDraft {
    pub fn new(
        platform_id: &str,
        project_id: Option<&str>,
        actor: &Actor,
        action: &str,
        data: Value,
    ) -> AuditDraft {
        AuditDraft {
            platform_id: platform_id.to_string(),
            project_id: project_id.map(str::to_string),
            actor: actor.clone(),
            action: action.to_string(),
            data,
        }
    }
}

/// What a `flow.run.started` audit event says about a run.
pub struct RunStarted<'a> {
    pub scope: &'a super::Scope,
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
            "flow.run.started",
            data,
        )
    }
}

/// The `flow.run.started` events of the runs their receiver took at intake (`lease` set), given
/// the flows' names by id.
pub fn started_at_intake(
    events: &[&super::NewEvent],
    started: &str,
    names: &std::collections::HashMap<String, String>,
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

/// The Activepieces envelope for a draft; both backends hash exactly these bytes.
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
    map.insert("action".into(), json!(draft.action));
    map.insert("data".into(), draft.data.clone());
    Value::Object(map)
}

/// Appends `drafts` in order within `tx`.
pub async fn append(tx: &mut Transaction<'_, Sqlite>, drafts: &[AuditDraft]) -> StoreResult<()> {
    if drafts.is_empty() {
        return Ok(());
    }
    let last = sqlx::query("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?;
    let mut prev: String = match last {
        Some(row) => row.try_get("hash")?,
        None => GENESIS.to_string(),
    };
    let created = super::now_text();
    let mut rows = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let id = super::new_id();
        let body = envelope(&id, &created, draft).to_string();
        let hash = chain_hash(&prev, &body);
        rows.push((id, draft, body, prev.clone(), hash.clone()));
        prev = hash;
    }
    let mut written: Vec<(i64, &str, &String)> = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(300) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_events (id, created, platform_id, project_id, user_id, action, body, prev_hash, hash) ",
        );
        q.push_values(chunk, |mut b, (id, draft, body, prev, hash)| {
            b.push_bind(id)
                .push_bind(&created)
                .push_bind(&draft.platform_id)
                .push_bind(&draft.project_id)
                .push_bind(&draft.actor.user_id)
                .push_bind(&draft.action)
                .push_bind(body)
                .push_bind(prev)
                .push_bind(hash);
        });
        q.push(" RETURNING seq");
        let seqs = q.build().fetch_all(&mut **tx).await?;
        for (row, (_, draft, body, _, _)) in seqs.iter().zip(chunk) {
            written.push((row.try_get("seq")?, draft.action.as_str(), body));
        }
    }
    enqueue_deliveries(tx, &written, &created).await?;
    Ok(())
}

/// Writes an outbox entry for every enabled destination whose filter matches each event, in
/// the same transaction as the events themselves.
async fn enqueue_deliveries(
    tx: &mut Transaction<'_, Sqlite>,
    written: &[(i64, &str, &String)],
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
            Ok((
                r.try_get("id")?,
                serde_json::from_str(&events).unwrap_or_default(),
            ))
        })
        .collect::<StoreResult<_>>()?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut entries = Vec::new();
    for (seq, action, body) in written {
        for (destination, events) in &filters {
            if events.is_empty() || events.iter().any(|e| e == action) {
                entries.push((super::new_id(), destination, *seq, *body));
            }
        }
    }
    for chunk in entries.chunks(300) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO outbox (id, destination_id, audit_seq, payload, status, attempts, next_attempt, created) ",
        );
        q.push_values(chunk, |mut b, (id, destination, seq, body)| {
            b.push_bind(id)
                .push_bind(*destination)
                .push_bind(*seq)
                .push_bind(*body)
                .push_bind("PENDING")
                .push_bind(0i64)
                .push_bind(now)
                .push_bind(created);
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
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
