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
//!
//! Since migration 0014 the hash is keyed ([`AuditKey`], HMAC-SHA256 with a key derived from
//! the secret key, never stored in the database) and covers every column the API and retention
//! read ([`keyed_hash`]), so someone who can write the database can neither edit a filter column
//! nor rewrite a body and recompute the hashes after it. Events written before the migration
//! keep their SHA-256 hashes up to `audit_chain_head.keyed_from`; the first keyed event links
//! to the last of them. The head itself is signed (`mac`), and retention leaves a signed
//! checkpoint for every range it deletes ([`Checkpoint`]).

use super::rows::{in_list, paginate, push_created_range, push_cursor};
use super::sql::{Col, Conn, Param, Ty, params};
use super::{
    Actor, AuditAction, AuditFilter, AuditRow, DestinationScope, NewEvent, Page, Scope, StoreError,
    StoreResult, epoch_ms, new_id, now_text,
};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::OnceLock;

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

/// The key of the audit chain: HMAC-SHA256 over the chain, the head and retention checkpoints.
/// Derived from the secret key material (`HOOKFLOW_SECRET_KEY` or `secret.key`), so whoever can
/// read or write only the database cannot forge a hash. `Debug` never shows it.
#[derive(Clone)]
pub struct AuditKey([u8; 32]);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// The audit key for `secret_key` (the 32 bytes secrets are sealed with): a separate key
    /// for a separate purpose, so an audit MAC never doubles as anything secrets use.
    pub fn derive(secret_key: &[u8]) -> AuditKey {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret_key)
            .expect("HMAC-SHA256 takes a key of any length");
        mac.update(b"hookflow audit chain v1");
        AuditKey(mac.finalize().into_bytes().into())
    }

    /// HMAC-SHA256 (hex) over `parts`, each length-prefixed so no two part lists collide; a
    /// `None` part is encoded apart from every string, including the empty one.
    fn mac(&self, domain: &str, parts: &[Option<&str>]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC-SHA256 takes a 32-byte key");
        mac.update(&(domain.len() as u64).to_be_bytes());
        mac.update(domain.as_bytes());
        for part in parts {
            match part {
                Some(text) => {
                    mac.update(&(text.len() as u64).to_be_bytes());
                    mac.update(text.as_bytes());
                }
                None => mac.update(&u64::MAX.to_be_bytes()),
            }
        }
        hex(&mac.finalize().into_bytes())
    }

    fn eq(&self, other: &AuditKey) -> bool {
        use subtle_eq::ct_eq;
        ct_eq(&self.0, &other.0)
    }
}

/// Constant-time comparison of MACs and keys.
mod subtle_eq {
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// True when two hex MACs are equal, compared in constant time.
pub fn mac_eq(a: &str, b: &str) -> bool {
    subtle_eq::ct_eq(a.as_bytes(), b.as_bytes())
}

static KEY: OnceLock<AuditKey> = OnceLock::new();

/// Makes `key` the audit key of this process: the server and the local CLI commands install it
/// from the secret key before they touch the store. The store appends inside transactions its
/// callers build from many modules, so the key is process-wide rather than threaded through each
/// of them; one process serves one data directory. Installing a different key later is refused.
pub fn install_key(key: AuditKey) -> Result<(), StoreError> {
    let installed = KEY.get_or_init(|| key.clone());
    if installed.eq(&key) {
        Ok(())
    } else {
        Err(StoreError::Conflict(
            "a different audit key is already installed in this process".into(),
        ))
    }
}

/// The installed key. A process that never installed one (a throwaway store for a local test
/// run, unit tests) gets a random key of its own: its events verify within the process and
/// nowhere else, which is the truth about them.
pub fn key() -> &'static AuditKey {
    KEY.get_or_init(|| {
        use rand::Rng;
        AuditKey(rand::rng().random())
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One stored audit event with every column the chain covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    pub seq: i64,
    pub id: String,
    pub created: String,
    pub platform_id: String,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub action: String,
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The keyed hash of an event: HMAC over its `seq`, `id`, `created`, platform, project, user,
/// action, body and the previous hash. Any of them changed, the hash no longer matches, and
/// only the key holder can compute a new one.
#[allow(clippy::too_many_arguments)]
pub fn keyed_hash(
    key: &AuditKey,
    seq: i64,
    id: &str,
    created: &str,
    platform_id: &str,
    project_id: Option<&str>,
    user_id: Option<&str>,
    action: &str,
    body: &str,
    prev_hash: &str,
) -> String {
    let seq = seq.to_string();
    key.mac(
        "audit-event-v2",
        &[
            Some(&seq),
            Some(id),
            Some(created),
            Some(platform_id),
            project_id,
            user_id,
            Some(action),
            Some(body),
            Some(prev_hash),
        ],
    )
}

impl ChainRow {
    /// The hash this row should carry: keyed from `keyed_from` on, the SHA-256 rule before.
    pub fn expected_hash(&self, key: &AuditKey, keyed_from: i64) -> String {
        if self.seq >= keyed_from {
            keyed_hash(
                key,
                self.seq,
                &self.id,
                &self.created,
                &self.platform_id,
                self.project_id.as_deref(),
                self.user_id.as_deref(),
                &self.action,
                &self.body,
                &self.prev_hash,
            )
        } else {
            chain_hash(&self.prev_hash, &self.body)
        }
    }
}

/// The chain head: the last appended event's `seq` and hash, the first keyed `seq`, and its
/// signature (None until the first keyed append after the migration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
    pub keyed_from: i64,
    pub mac: Option<String>,
}

/// The signature of the head row in the database.
pub fn head_mac(key: &AuditKey, seq: i64, hash: &str, keyed_from: i64) -> String {
    key.mac(
        "audit-head-row-v1",
        &[
            Some(&seq.to_string()),
            Some(hash),
            Some(&keyed_from.to_string()),
        ],
    )
}

/// The signature of a head printed to be kept elsewhere (`hookflow audit head`): `SEQ:HASH:SIG`.
pub fn signed_head_sig(key: &AuditKey, seq: i64, hash: &str) -> String {
    key.mac(
        "audit-signed-head-v1",
        &[Some(&seq.to_string()), Some(hash)],
    )
}

/// What retention deleted: the range, how many rows, the links on either side, the digest of
/// what it archived, signed with the audit key so verify can tell it from a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub first_seq: i64,
    pub last_seq: i64,
    pub count: i64,
    /// The `prev_hash` of the first deleted event.
    pub prev_hash: String,
    /// The hash of the last deleted event: the next event links to it.
    pub last_hash: String,
    /// SHA-256 (hex) of the JSON Lines archived for the range, when retention archived.
    pub archive_digest: Option<String>,
    pub created: String,
    pub mac: String,
}

impl Checkpoint {
    /// The signature over every other field.
    pub fn expected_mac(&self, key: &AuditKey) -> String {
        key.mac(
            "audit-checkpoint-v1",
            &[
                Some(&self.first_seq.to_string()),
                Some(&self.last_seq.to_string()),
                Some(&self.count.to_string()),
                Some(&self.prev_hash),
                Some(&self.last_hash),
                self.archive_digest.as_deref(),
                Some(&self.created),
            ],
        )
    }
}

/// `sha256(prev_hash || body)` as hex: the rule of events written before the keyed chain.
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
    let key = key();
    let lock = c.dialect().for_update();
    let head = c
        .query_opt(
            &format!("SELECT seq, hash, keyed_from, mac FROM audit_chain_head WHERE id = 1{lock}"),
            params![],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("the audit chain head row is missing".into()))?;
    let mut seq = head.int("seq")?;
    let mut prev = head.text("hash")?;
    let keyed_from = head.opt_int("keyed_from")?.unwrap_or(seq + 1);
    // A head whose signature does not match stays unsigned-looking: appending must not launder a
    // rewritten head (a cut tail) into a signed one. Verify reports it.
    let mac = head.opt_text("mac")?;
    let head_valid = match &mac {
        Some(mac) => mac_eq(mac, &head_mac(key, seq, &prev, keyed_from)),
        None => seq == keyed_from - 1,
    };
    // Taken under the head's lock, so `created` never goes backwards along the chain.
    let created = now_text();
    if mac.is_none() && head_valid && seq > 0 {
        // The first append after the upgrade to the keyed chain: anchor the events written
        // before it with a signed record of where they end and their last hash.
        anchor_legacy(c, key, seq, &prev, &created).await?;
    }
    let mut rows = Vec::with_capacity(drafts.len());
    let mut written = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let id = new_id();
        let body = envelope(&id, &created, draft).to_string();
        seq += 1;
        let hash = keyed_hash(
            key,
            seq,
            &id,
            &created,
            &draft.platform_id,
            draft.project_id.as_deref(),
            draft.actor.user_id.as_deref(),
            draft.action.as_str(),
            &body,
            &prev,
        );
        written.push((
            seq,
            draft.action,
            draft.project_id.clone(),
            body.clone(),
            hash.clone(),
        ));
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
    let mac = if head_valid {
        head_mac(key, seq, &prev, keyed_from)
    } else {
        "invalid: the head was not signed by this chain's key before this append".to_string()
    };
    c.execute(
        "UPDATE audit_chain_head SET seq = ?, hash = ?, keyed_from = ?, mac = ? WHERE id = 1",
        params![seq, prev, keyed_from, mac],
    )
    .await?;
    enqueue_deliveries(c, &written, &created).await
}

/// Records, signed, that events 1..`last_seq` were written under the SHA-256 rule and end at
/// `last_hash`: the checkpoint with `first_seq` 0 (no event has seq 0). Verify trusts the
/// SHA-256 rule only up to it, so turning keyed events back into SHA-256 ones is caught; the
/// first keyed event links to `last_hash`, so rewriting the earlier ones is caught too.
async fn anchor_legacy(
    c: &mut dyn Conn,
    key: &AuditKey,
    last_seq: i64,
    last_hash: &str,
    created: &str,
) -> StoreResult<()> {
    let mut anchor = Checkpoint {
        first_seq: 0,
        last_seq,
        count: last_seq,
        prev_hash: GENESIS.to_string(),
        last_hash: last_hash.to_string(),
        archive_digest: None,
        created: created.to_string(),
        mac: String::new(),
    };
    anchor.mac = anchor.expected_mac(key);
    c.execute(
        "INSERT INTO audit_checkpoints (first_seq, last_seq, count, prev_hash, last_hash, archive_digest, created, mac) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (first_seq) DO NOTHING",
        params![
            anchor.first_seq,
            anchor.last_seq,
            anchor.count,
            &anchor.prev_hash,
            &anchor.last_hash,
            &anchor.archive_digest,
            &anchor.created,
            &anchor.mac
        ],
    )
    .await?;
    Ok(())
}

/// The first seq hashed with the key, as the signed upgrade anchor (`first_seq` 0) says; 1 when
/// there is none (a database created with the keyed chain, or one whose anchor was removed:
/// then every event must carry a keyed hash).
pub fn trusted_keyed_from(key: &AuditKey, checkpoints: &[Checkpoint]) -> i64 {
    checkpoints
        .iter()
        .find(|c| c.first_seq == 0 && mac_eq(&c.mac, &c.expected_mac(key)))
        .map_or(1, |c| c.last_seq + 1)
}

/// What a destination receives for a stored event: its Activepieces envelope plus `seq` and
/// `chainHash`, so every destination holds a copy of the head as of each event it got (and a
/// redelivered event carries the same two fields).
pub fn streamed_payload(seq: i64, body: &str, hash: &str) -> StoreResult<String> {
    let mut payload: Value = serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt(format!("audit event {seq}: {e}")))?;
    payload["seq"] = json!(seq);
    payload["chainHash"] = json!(hash);
    Ok(payload.to_string())
}

/// Writes an outbox entry for every enabled destination whose filter matches each event, in
/// the same transaction as the events themselves.
async fn enqueue_deliveries(
    c: &mut dyn Conn,
    written: &[(i64, AuditAction, Option<String>, String, String)],
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
    for (seq, action, event_project, body, hash) in written {
        let payload = streamed_payload(*seq, body, hash)?;
        for (destination, events, only_project) in &filters {
            let in_scope = only_project
                .as_ref()
                .is_none_or(|p| event_project.as_ref() == Some(p));
            if in_scope && (events.is_empty() || events.iter().any(|e| e == action.as_str())) {
                entries.push(vec![
                    Param::from(new_id()),
                    Param::from(destination),
                    Param::from(*seq),
                    Param::from(&payload),
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

/// Rows in chain order after `after_seq`, with every column the chain covers.
pub async fn chain_rows(
    c: &mut dyn Conn,
    after_seq: i64,
    limit: u32,
) -> StoreResult<Vec<ChainRow>> {
    c.query(
        "SELECT seq, id, created, platform_id, project_id, user_id, action, body, prev_hash, hash \
         FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?",
        params![after_seq, limit],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(ChainRow {
            seq: r.int("seq")?,
            id: r.text("id")?,
            created: r.text("created")?,
            platform_id: r.text("platform_id")?,
            project_id: r.opt_text("project_id")?,
            user_id: r.opt_text("user_id")?,
            action: r.text("action")?,
            body: r.text("body")?,
            prev_hash: r.text("prev_hash")?,
            hash: r.text("hash")?,
        })
    })
    .collect()
}

/// The chain head as stored.
pub async fn head(c: &mut dyn Conn) -> StoreResult<ChainHead> {
    let row = c
        .query_opt(
            "SELECT seq, hash, keyed_from, mac FROM audit_chain_head WHERE id = 1",
            params![],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("the audit chain head row is missing".into()))?;
    let seq = row.int("seq")?;
    Ok(ChainHead {
        seq,
        hash: row.text("hash")?,
        keyed_from: row.opt_int("keyed_from")?.unwrap_or(seq + 1),
        mac: row.opt_text("mac")?,
    })
}

/// Every retention checkpoint, oldest range first.
pub async fn checkpoints(c: &mut dyn Conn) -> StoreResult<Vec<Checkpoint>> {
    c.query(
        "SELECT first_seq, last_seq, count, prev_hash, last_hash, archive_digest, created, mac \
         FROM audit_checkpoints ORDER BY first_seq",
        params![],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Checkpoint {
            first_seq: r.int("first_seq")?,
            last_seq: r.int("last_seq")?,
            count: r.int("count")?,
            prev_hash: r.text("prev_hash")?,
            last_hash: r.text("last_hash")?,
            archive_digest: r.opt_text("archive_digest")?,
            created: r.text("created")?,
            mac: r.text("mac")?,
        })
    })
    .collect()
}

/// Deletes exactly the range `checkpoint` describes and records the checkpoint, in one
/// transaction: if the range does not hold exactly `count` events carrying the hashes retention
/// read, nothing is deleted. Returns how many were deleted: 0 when another process retired
/// the range first.
pub async fn retire(c: &mut dyn Conn, checkpoint: &Checkpoint) -> StoreResult<u64> {
    // Under the head's lock: appends and another process's retention wait, so a range is retired
    // once. One another process retired already is nothing to do (0).
    let lock = c.dialect().for_update();
    c.query_opt(
        &format!("SELECT seq FROM audit_chain_head WHERE id = 1{lock}"),
        params![],
    )
    .await?;
    if c.query_opt(
        "SELECT first_seq FROM audit_checkpoints WHERE first_seq = ?",
        params![checkpoint.first_seq],
    )
    .await?
    .is_some()
    {
        return Ok(0);
    }
    let ends = c
        .query(
            "SELECT seq, prev_hash, hash FROM audit_events WHERE seq IN (?, ?)",
            params![checkpoint.first_seq, checkpoint.last_seq],
        )
        .await?;
    let end = |seq: i64| ends.iter().find(|r| r.int("seq").ok() == Some(seq));
    let first_ok = end(checkpoint.first_seq)
        .is_some_and(|r| r.text("prev_hash").ok().as_deref() == Some(&checkpoint.prev_hash));
    let last_ok = end(checkpoint.last_seq)
        .is_some_and(|r| r.text("hash").ok().as_deref() == Some(&checkpoint.last_hash));
    if !first_ok || !last_ok {
        return Err(StoreError::Conflict(format!(
            "audit events {}..{} changed while retention read them",
            checkpoint.first_seq, checkpoint.last_seq
        )));
    }
    let deleted = c
        .execute(
            "DELETE FROM audit_events WHERE seq >= ? AND seq <= ?",
            params![checkpoint.first_seq, checkpoint.last_seq],
        )
        .await?;
    if deleted != checkpoint.count as u64 {
        return Err(StoreError::Conflict(format!(
            "audit events {}..{}: {deleted} stored, retention read {}",
            checkpoint.first_seq, checkpoint.last_seq, checkpoint.count
        )));
    }
    c.execute(
        "INSERT INTO audit_checkpoints (first_seq, last_seq, count, prev_hash, last_hash, archive_digest, created, mac) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            checkpoint.first_seq,
            checkpoint.last_seq,
            checkpoint.count,
            &checkpoint.prev_hash,
            &checkpoint.last_hash,
            &checkpoint.archive_digest,
            &checkpoint.created,
            &checkpoint.mac
        ],
    )
    .await?;
    Ok(deleted)
}

impl super::Store {
    /// Audit events after `after_seq` in chain order, with every column the chain covers.
    pub async fn audit_chain_rows(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<ChainRow>> {
        on!(self.read, [], |c| chain_rows(c, after_seq, limit))
    }

    /// The audit chain head.
    pub async fn audit_head(&self) -> StoreResult<ChainHead> {
        on!(self.read, [], |c| head(c))
    }

    /// Every retention checkpoint, oldest first.
    pub async fn audit_checkpoints(&self) -> StoreResult<Vec<Checkpoint>> {
        on!(self.read, [], |c| checkpoints(c))
    }

    /// Deletes the range a (signed) checkpoint describes and records it; see [`retire`].
    pub async fn retire_audit(&self, checkpoint: &Checkpoint) -> StoreResult<u64> {
        on!(self.write, [checkpoint], |c| retire(c, &checkpoint))
    }
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

    fn row() -> ChainRow {
        ChainRow {
            seq: 7,
            id: "e1".into(),
            created: "2026-01-01T00:00:00.000Z".into(),
            platform_id: "default".into(),
            project_id: Some("p1".into()),
            user_id: None,
            action: "flow.created".into(),
            body: "{}".into(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn keyed_hash_covers_every_column_and_the_key() {
        let key = AuditKey::derive(&[7; 32]);
        let base = row().expected_hash(&key, 1);
        assert_eq!(base.len(), 64);
        assert_ne!(base, row().expected_hash(&AuditKey::derive(&[8; 32]), 1));
        let edits: Vec<fn(&mut ChainRow)> = vec![
            |r| r.seq = 8,
            |r| r.id = "e2".into(),
            |r| r.created = "2020-01-01T00:00:00.000Z".into(),
            |r| r.platform_id = "other".into(),
            |r| r.project_id = Some("p2".into()),
            |r| r.project_id = None,
            |r| r.user_id = Some(String::new()),
            |r| r.action = "flow.deleted".into(),
            |r| r.body = "{ }".into(),
            |r| r.prev_hash = "1".repeat(64),
        ];
        for (i, edit) in edits.into_iter().enumerate() {
            let mut r = row();
            edit(&mut r);
            assert_ne!(r.expected_hash(&key, 1), base, "edit {i}");
        }
        // Before `keyed_from`, the SHA-256 rule over the link and the body.
        assert_eq!(row().expected_hash(&key, 8), chain_hash(GENESIS, "{}"));
    }

    #[test]
    fn signatures_are_separate_by_purpose() {
        let key = AuditKey::derive(&[7; 32]);
        assert_ne!(head_mac(&key, 3, "h", 1), signed_head_sig(&key, 3, "h"));
        assert_ne!(signed_head_sig(&key, 3, "h"), signed_head_sig(&key, 4, "h"));
        assert!(format!("{key:?}").ends_with("(..)"));
        assert!(mac_eq("ab", "ab") && !mac_eq("ab", "ac") && !mac_eq("ab", "abc"));
    }
}
