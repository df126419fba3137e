//! Reading the engine's audit log back: chain verification (tamper evidence), retention, and the
//! one-line summaries the API and the CLI show. Writing happens in `store`, in the same transaction as each change.

pub mod query;

use crate::catalog::Catalog;
use crate::store::audit::{
    AuditKey, ChainHead, ChainRow, Checkpoint, GENESIS, head_mac, mac_eq, signed_head_sig,
    trusted_keyed_from,
};
use crate::store::{DynStore, StoreError};
use serde_json::{Value, json};
use std::path::Path;

/// The audit key from the same key material as secrets: `HOOKFLOW_SECRET_KEY` (base64) when
/// set, else `<data dir>/secret.key`. Read-only: a missing key file is an error here (the
/// server creates it on first start), since a key made up now could verify nothing.
pub fn load_key(configured: Option<&str>, data_dir: &Path) -> Result<AuditKey, String> {
    use base64::Engine as _;
    let (text, from) = match configured {
        Some(text) => (text.to_string(), "HOOKFLOW_SECRET_KEY".to_string()),
        None => {
            let path = data_dir.join("secret.key");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "cannot read the secret key {} ({e}); set HOOKFLOW_SECRET_KEY or --data-dir",
                    path.display()
                )
            })?;
            (text, path.display().to_string())
        }
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| format!("{from} is not base64"))?;
    if bytes.len() != 32 {
        return Err(format!("{from} must hold 32 bytes, got {}", bytes.len()));
    }
    Ok(AuditKey::derive(&bytes))
}

/// A head kept outside the database, as `hookflow audit head` prints it: `SEQ:HASH`, optionally
/// with its signature `SEQ:HASH:SIG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalHead {
    pub seq: i64,
    pub hash: String,
    pub sig: Option<String>,
}

impl std::str::FromStr for ExternalHead {
    type Err = String;

    fn from_str(text: &str) -> Result<ExternalHead, String> {
        let parts: Vec<&str> = text.trim().split(':').collect();
        let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        match parts.as_slice() {
            [seq, hash, rest @ ..] if rest.len() <= 1 && hex64(hash) => Ok(ExternalHead {
                seq: seq
                    .parse()
                    .ok()
                    .filter(|s: &i64| *s >= 0)
                    .ok_or_else(|| format!("head: {seq:?} is not a seq"))?,
                hash: hash.to_ascii_lowercase(),
                sig: match rest.first() {
                    Some(sig) if hex64(sig) => Some(sig.to_ascii_lowercase()),
                    Some(_) => return Err("head: the signature must be 64 hex digits".into()),
                    None => None,
                },
            }),
            _ => Err("head: expected SEQ:HASH or SEQ:HASH:SIG (HASH 64 hex digits)".into()),
        }
    }
}

/// The current head, signed with the audit key, for keeping elsewhere.
pub fn sign_head(key: &AuditKey, head: &ChainHead) -> Value {
    let sig = signed_head_sig(key, head.seq, &head.hash);
    json!({"seq": head.seq, "hash": head.hash, "sig": sig,
        "text": format!("{}:{}:{sig}", head.seq, head.hash)})
}

/// One thing verification found wrong, named: `kind` is stable for programs, `message` says
/// what and where in words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub kind: &'static str,
    /// The first seq concerned, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// The stored event's id, when the finding is about one that is still stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub message: String,
}

/// A range retention deleted, as verify accepted it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionRange {
    pub first_seq: i64,
    pub last_seq: i64,
    pub count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_digest: Option<String>,
}

/// What `verify` found: how many stored events it checked, the ranges retention accounted for,
/// and every problem, each named.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub intact: bool,
    pub events: u64,
    pub head_seq: i64,
    pub head_hash: String,
    pub keyed_from: i64,
    /// Events before the keyed chain that retention deleted without a checkpoint (1..this).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_pruned_through: Option<i64>,
    pub retention: Vec<RetentionRange>,
    pub problems: Vec<Finding>,
}

impl Report {
    /// One line per finding (or "intact"), as the CLI prints them.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .legacy_pruned_through
            .map(|n| format!("rows 1..{n} were deleted before the keyed chain (no checkpoint)"))
            .into_iter()
            .collect();
        lines.extend(self.retention.iter().map(|r| {
            format!(
                "retention checkpoint covers {}..{} ({} events)",
                r.first_seq, r.last_seq, r.count
            )
        }));
        if self.intact {
            lines.push(format!(
                "audit chain intact: {} events verified, head {}:{}",
                self.events, self.head_seq, self.head_hash
            ));
        } else {
            lines.extend(self.problems.iter().map(|p| p.message.clone()));
        }
        lines
    }
}

/// Stops a walk from listing thousands of findings for one big tampering.
const MAX_FINDINGS: usize = 50;

/// Walks the whole chain with `key`: every stored event's hash (keyed rule from `keyed_from`,
/// SHA-256 before), its link to its predecessor, its filter columns against its body, every gap
/// against the signed retention checkpoints, the head row and its signature, and, when given,
/// a head kept elsewhere (`--head`): it must still be in the chain with the same hash.
pub async fn verify(
    store: &DynStore,
    key: &AuditKey,
    external: Option<&ExternalHead>,
) -> Result<Report, StoreError> {
    let head = store.audit_head().await?;
    let mut found: Vec<Finding> = Vec::new();
    let stored_checkpoints = store.audit_checkpoints().await?;
    // Until the first keyed append anchors them, events from before the upgrade are checked under
    // the rule the head row claims (and the unsigned head is itself reported below).
    let mut keyed_from = match (&head.mac, trusted_keyed_from(key, &stored_checkpoints)) {
        (None, 1) if head.seq > 0 => head.keyed_from,
        (_, trusted) => trusted,
    };
    let head_signed = match &head.mac {
        Some(mac) => mac_eq(mac, &head_mac(key, head.seq, &head.hash, head.keyed_from)),
        None => head.seq == 0,
    };
    if head.mac.is_none() && head.seq > 0 {
        note(
            &mut found,
            "unanchored",
            Some(head.seq),
            format!(
                "chain head {}: not signed; events before the keyed chain are anchored by the next event appended (start the server once)",
                head.seq
            ),
        );
    } else if !head_signed {
        note(
            &mut found,
            "head-signature",
            Some(head.seq),
            format!(
                "chain head {}: its signature does not match (the head row was rewritten)",
                head.seq
            ),
        );
    }
    if let Some(external) = external
        && let Some(sig) = &external.sig
        && !mac_eq(sig, &signed_head_sig(key, external.seq, &external.hash))
    {
        note(
            &mut found,
            "given-head-signature",
            Some(external.seq),
            format!(
                "the given head {}: its signature does not match this chain's key",
                external.seq
            ),
        );
    }
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for checkpoint in stored_checkpoints {
        if checkpoint.first_seq == 0 {
            // The upgrade anchor: read by `trusted_keyed_from`, covers no gap.
            continue;
        }
        if mac_eq(&checkpoint.mac, &checkpoint.expected_mac(key)) {
            checkpoints.push(checkpoint);
        } else {
            note(
                &mut found,
                "checkpoint-signature",
                Some(checkpoint.first_seq),
                format!(
                    "retention checkpoint {}..{}: its signature does not match (not written by retention)",
                    checkpoint.first_seq, checkpoint.last_seq
                ),
            );
        }
    }
    let mut retention = Vec::new();
    // The next seq expected and the hash it must link to.
    let mut expected = 1;
    let mut previous = GENESIS.to_string();
    let mut events = 0;
    // The given head, once seen in the chain (or in a checkpoint's last link).
    let mut external_seen = false;
    let mut after = 0;
    let mut legacy_pruned_through = None;
    let mut account_gap = |upto: i64,
                           keyed_from: i64,
                           expected: &mut i64,
                           previous: &mut String,
                           found: &mut Vec<Finding>,
                           retention: &mut Vec<RetentionRange>,
                           external_seen: &mut bool| {
        // Checkpoints that start where the chain stands cover the gap, one after another.
        while *expected <= upto {
            let Some(cp) = checkpoints.iter().find(|c| c.first_seq == *expected) else {
                break;
            };
            if cp.prev_hash != *previous && *expected > 1 {
                note(
                    found,
                    "link",
                    Some(cp.first_seq),
                    format!(
                        "retention checkpoint {}..{}: does not link to seq {}",
                        cp.first_seq,
                        cp.last_seq,
                        cp.first_seq - 1
                    ),
                );
            }
            if let Some(e) = external
                && e.seq >= cp.first_seq
                && e.seq <= cp.last_seq
            {
                *external_seen = e.seq != cp.last_seq || e.hash == cp.last_hash;
            }
            retention.push(RetentionRange {
                first_seq: cp.first_seq,
                last_seq: cp.last_seq,
                count: cp.count,
                archive_digest: cp.archive_digest.clone(),
            });
            *expected = cp.last_seq + 1;
            *previous = cp.last_hash.clone();
        }
        if *expected == 1 && upto < keyed_from {
            // Events retention deleted before the keyed chain (no checkpoints then): the chain
            // starts at the oldest stored event, as it always did for them.
            legacy_pruned_through = Some(upto);
            *expected = upto + 1;
            return true;
        }
        if *expected <= upto {
            note(
                found,
                "missing",
                Some(*expected),
                if *expected == upto {
                    format!("row {} missing", *expected)
                } else {
                    format!("rows {}..{} missing", *expected, upto)
                },
            );
            *expected = upto + 1;
        }
        false
    };
    loop {
        let rows = store.audit_chain_rows(after, 1000).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in rows {
            if row.seq > expected {
                let gap_end = row.seq - 1;
                let missing_before = found.len();
                let pruned = account_gap(
                    gap_end,
                    keyed_from,
                    &mut expected,
                    &mut previous,
                    &mut found,
                    &mut retention,
                    &mut external_seen,
                );
                if pruned || found.len() > missing_before {
                    // The link across a reported gap cannot be checked; go on from this row.
                    previous = row.prev_hash.clone();
                }
            }
            if row.seq < keyed_from
                && row.hash == row.expected_hash(key, row.seq)
                && row.hash != row.expected_hash(key, keyed_from)
            {
                // A keyed event where the head claims the SHA-256 rule still holds: the claim is
                // false, and nothing after a keyed event may be unkeyed.
                keyed_from = row.seq;
            }
            let before = found.len();
            check_row(key, keyed_from, &row, &previous, &mut |kind, message| {
                note(&mut found, kind, Some(row.seq), message)
            });
            for finding in &mut found[before..] {
                finding.id = Some(row.id.clone());
            }
            if let Some(e) = external
                && e.seq == row.seq
            {
                external_seen = true;
                if e.hash != row.hash {
                    note(
                        &mut found,
                        "given-head",
                        Some(row.seq),
                        format!("row {}: its hash differs from the given head", row.seq),
                    );
                }
            }
            previous = row.hash.clone();
            expected = row.seq + 1;
            events += 1;
        }
    }
    // The tail: the head must be the last event (or the end of the last checkpoint).
    if expected <= head.seq {
        let _ = account_gap(
            head.seq,
            keyed_from,
            &mut expected,
            &mut previous,
            &mut found,
            &mut retention,
            &mut external_seen,
        );
        if let Some(last) = found.last_mut()
            && last.kind == "missing"
        {
            last.kind = "cut-tail";
            last.message = format!(
                "cut tail after seq {}: the head says {} ({})",
                last.seq.unwrap_or(1) - 1,
                head.seq,
                last.message
            );
        }
    } else if expected - 1 > head.seq {
        note(
            &mut found,
            "head",
            Some(expected - 1),
            format!(
                "chain head {} is behind the last event {} (the head row was rewritten)",
                head.seq,
                expected - 1
            ),
        );
    }
    if expected - 1 == head.seq && previous != head.hash && head.seq > 0 {
        note(
            &mut found,
            "head",
            Some(head.seq),
            format!(
                "chain head {}: its hash differs from the last event's",
                head.seq
            ),
        );
    }
    if let Some(e) = external
        && !external_seen
    {
        let last = expected - 1;
        note(
            &mut found,
            "cut-tail",
            Some(last + 1),
            if e.seq > last {
                format!(
                    "cut tail after seq {last}: the given head {} is no longer in the chain",
                    e.seq
                )
            } else {
                format!("the given head {} is not in the chain", e.seq)
            },
        );
    }
    Ok(Report {
        intact: found.is_empty(),
        events,
        head_seq: head.seq,
        head_hash: head.hash,
        keyed_from,
        legacy_pruned_through,
        retention,
        problems: found,
    })
}

fn note(found: &mut Vec<Finding>, kind: &'static str, seq: Option<i64>, message: String) {
    if found.len() < MAX_FINDINGS {
        found.push(Finding {
            kind,
            seq,
            id: None,
            message,
        });
    }
}

/// Checks one row's link, hash and filter columns; `bad(kind, message)` for each problem.
fn check_row(
    key: &AuditKey,
    keyed_from: i64,
    row: &ChainRow,
    previous: &str,
    bad: &mut dyn FnMut(&'static str, String),
) {
    if row.prev_hash != previous {
        bad(
            "link",
            format!(
                "row {}: its link to seq {} does not match (an event before it was changed or replaced)",
                row.seq,
                row.seq - 1
            ),
        );
    }
    let changed = changed_columns(row);
    for column in &changed {
        bad(
            "column",
            format!("row {}: column {column} changed", row.seq),
        );
    }
    if row.expected_hash(key, keyed_from) != row.hash && changed.is_empty() {
        bad(
            "hash",
            if row.seq >= keyed_from {
                format!(
                    "row {}: its content does not match its keyed hash (body or columns rewritten)",
                    row.seq
                )
            } else {
                format!("row {}: its body does not match its hash (edited)", row.seq)
            },
        );
    }
}

/// The filter columns that disagree with the envelope the event was written with.
fn changed_columns(row: &ChainRow) -> Vec<&'static str> {
    let Ok(body) = serde_json::from_str::<Value>(&row.body) else {
        return vec!["body"];
    };
    let text = |key: &str| body[key].as_str().map(str::to_string);
    let mut changed = Vec::new();
    for (column, stored, written) in [
        ("id", Some(row.id.clone()), text("id")),
        ("created", Some(row.created.clone()), text("created")),
        (
            "platform_id",
            Some(row.platform_id.clone()),
            text("platformId"),
        ),
        ("project_id", row.project_id.clone(), text("projectId")),
        ("user_id", row.user_id.clone(), text("userId")),
        ("action", Some(row.action.clone()), text("action")),
    ] {
        if stored != written {
            changed.push(column);
        }
    }
    changed
}

/// Deletes audit events older than `days` and writes a signed checkpoint for each deleted
/// range, archiving exactly what it deletes first (gzip JSONL, one file per day, appended as
/// gzip members) when `archive_dir` is set. Only the oldest events are ever deleted, and only
/// while each one verifies: an event whose `created` was moved back, or that does not match its
/// hash, stops retention there (the error names it) instead of taking newer events with it.
/// Returns how many were deleted.
pub async fn enforce_retention(
    store: &DynStore,
    days: f64,
    archive_dir: Option<&std::path::Path>,
) -> anyhow::Result<u64> {
    let cutoff = (chrono::Utc::now()
        - chrono::Duration::milliseconds((days * 86_400_000.0).round() as i64))
    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let key = crate::store::audit::key();
    let keyed_from = trusted_keyed_from(key, &store.audit_checkpoints().await?);
    let mut total = 0;
    loop {
        let rows = store.audit_chain_rows(0, 1000).await?;
        let mut batch: Vec<ChainRow> = Vec::new();
        let mut stop: Option<String> = None;
        for row in rows {
            if row.created.as_str() >= cutoff.as_str() {
                break;
            }
            if let Some(before) = batch.last()
                && (row.seq != before.seq + 1 || row.prev_hash != before.hash)
            {
                stop = Some(format!(
                    "seq {} does not follow seq {}",
                    row.seq, before.seq
                ));
                break;
            }
            let mut problems = Vec::new();
            check_row(key, keyed_from, &row, &row.prev_hash, &mut |_, m| {
                problems.push(m)
            });
            if !problems.is_empty() {
                stop = Some(problems.join("; "));
                break;
            }
            batch.push(row);
        }
        if !batch.is_empty() {
            let deleted = retire(store, key, &batch, archive_dir).await?;
            if deleted == 0 {
                // Another process (PostgreSQL) retired this range first: it carries on.
                return Ok(total);
            }
            total += deleted;
        }
        if let Some(why) = stop {
            anyhow::bail!(
                "audit retention stopped after deleting {total} events, at an event that does not verify: {why}"
            );
        }
        if batch.len() < 1000 {
            return Ok(total);
        }
    }
}

/// Archives (and syncs) `batch`, then deletes it with its signed checkpoint. A crash in between
/// archives a batch twice at worst, never loses one.
async fn retire(
    store: &DynStore,
    key: &AuditKey,
    batch: &[ChainRow],
    archive_dir: Option<&std::path::Path>,
) -> anyhow::Result<u64> {
    use sha2::Digest;
    let (first, last) = (&batch[0], &batch[batch.len() - 1]);
    let archive_digest = match archive_dir {
        None => None,
        Some(dir) => {
            let dir = dir.to_path_buf();
            let days: Vec<(String, String)> = batch
                .iter()
                .map(|r| (r.created.chars().take(10).collect(), r.body.clone()))
                .collect();
            let digest = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
                let mut digest = sha2::Sha256::new();
                for (_, body) in &days {
                    digest.update(body.as_bytes());
                    digest.update(b"\n");
                }
                crate::archive::append_by_day(&dir, "audit", days)?;
                Ok(digest
                    .finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect())
            })
            .await??;
            Some(digest)
        }
    };
    let mut checkpoint = Checkpoint {
        first_seq: first.seq,
        last_seq: last.seq,
        count: batch.len() as i64,
        prev_hash: first.prev_hash.clone(),
        last_hash: last.hash.clone(),
        archive_digest,
        created: crate::store::now_text(),
        mac: String::new(),
    };
    checkpoint.mac = checkpoint.expected_mac(key);
    Ok(store.retire_audit(&checkpoint).await?)
}

/// Export formats of the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

impl ExportFormat {
    pub fn parse(text: &str) -> Option<ExportFormat> {
        match text {
            "jsonl" => Some(ExportFormat::Jsonl),
            "csv" => Some(ExportFormat::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    /// The CSV header line (none for JSONL).
    pub fn header(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "",
            ExportFormat::Csv => {
                "id,created,action,platformId,projectId,userId,userEmail,ip,summary,data\n"
            }
        }
    }

    /// One event (with its `summary`) as a line.
    pub fn line(self, event: &serde_json::Value) -> String {
        match self {
            ExportFormat::Jsonl => format!("{event}\n"),
            ExportFormat::Csv => {
                let text = |key: &str| event[key].as_str().unwrap_or("").to_string();
                let fields = [
                    text("id"),
                    text("created"),
                    text("action"),
                    text("platformId"),
                    text("projectId"),
                    text("userId"),
                    text("userEmail"),
                    text("ip"),
                    text("summary"),
                    event["data"].to_string(),
                ];
                let quoted: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                format!("{}\n", quoted.join(","))
            }
        }
    }
}

/// RFC 4180 quoting, and a leading `'` on values a spreadsheet would run as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// The event with its `summary`, from the catalog's summary template for its action.
pub fn with_summary(mut event: Value) -> Value {
    let action = event["action"].as_str().unwrap_or_default().to_string();
    let summary = own_summary(&action, &event).unwrap_or_else(|| {
        match Catalog::builtin()
            .source("activepieces")
            .and_then(|s| s.find(&action))
        {
            Some(kind) => kind.summarize(&event),
            None => action.replace('.', " "),
        }
    });
    event["summary"] = json!(summary);
    event
}

/// Summaries for the events hookflow itself writes, whose data differs from the Activepieces
/// samples the catalog's templates expect.
fn own_summary(action: &str, event: &Value) -> Option<String> {
    let data = &event["data"];
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    Some(match action {
        "flow.created" | "flow.updated" | "flow.deleted" | "flow.published" => {
            let verb = action.trim_start_matches("flow.");
            let draft = if data["draft"] == true {
                " as a draft"
            } else {
                ""
            };
            format!(
                "Flow {} was {verb}{draft} (version {})",
                text(&data["flow"]["displayName"]),
                data["flow"]["version"]
            )
        }
        "flow.tested" => {
            let live = if data["live"] == true {
                " live (steps with side effects ran)"
            } else {
                ""
            };
            let version = &data["flowVersion"];
            let which = match version["version"].as_i64() {
                Some(n) if version["draft"] == true => format!(", its draft version {n},"),
                Some(n) => format!(", version {n},"),
                None => String::new(),
            };
            format!(
                "Flow {}{which} was test-run{live} (run {})",
                text(&data["flow"]["displayName"]),
                text(&data["flowRun"]["id"])
            )
        }
        "flow.replayed" => format!(
            "Flow {} was replayed over {} past events",
            text(&data["flow"]["displayName"]),
            data["events"]
        ),
        "flow.activated" | "flow.deactivated" => {
            let state = if action == "flow.activated" {
                "enabled"
            } else {
                "disabled"
            };
            format!("Flow {} was {state}", text(&data["flow"]["displayName"]))
        }
        "user.signed.in" if data["user"]["method"] == "admin-token" => {
            format!(
                "Admin signed in with the admin token from {}",
                event["ip"].as_str().unwrap_or("an unknown address")
            )
        }
        "user.signed.in" => {
            let who = event["userEmail"].as_str().unwrap_or("someone");
            let from = event["ip"].as_str().unwrap_or("an unknown address");
            if data["success"] == false {
                format!(
                    "Failed sign-in for {who} from {from} ({})",
                    text(&data["reason"])
                )
            } else {
                format!("{who} signed in from {from}")
            }
        }
        "user.signed.out" => format!("{} signed out", text(&data["user"]["email"])),
        "user.signed.up" => format!(
            "User {} was created ({})",
            text(&data["user"]["email"]),
            data["method"].as_str().unwrap_or("admin")
        ),
        "user.updated" => {
            let u = &data["user"];
            let mut what = format!("User {} was updated", text(&u["email"]));
            if u["disabled"] == true {
                what.push_str(" (disabled)");
            }
            if data["passwordChanged"] == true {
                what.push_str(" (password changed)");
            }
            what
        }
        "user.password.reset" => format!(
            "The password of {} was reset; their sessions ended",
            text(&data["user"]["email"])
        ),
        "project.created" => format!(
            "Project {} was created",
            text(&data["project"]["displayName"])
        ),
        "project.member.added" | "project.member.updated" => format!(
            "{} is now {} in project {}",
            text(&data["member"]["email"]),
            text(&data["projectRole"]["name"]),
            text(&data["project"]["id"])
        ),
        "project.member.removed" => format!(
            "{} was removed from project {}",
            text(&data["member"]["email"]),
            text(&data["project"]["id"])
        ),
        "project.invitation.created" => format!(
            "{} was invited as {}",
            text(&data["invitation"]["email"]),
            text(&data["projectRole"]["name"])
        ),
        "project.invitation.revoked" => format!(
            "The invitation of {} was revoked",
            text(&data["invitation"]["email"])
        ),
        "api.key.created" | "api.key.revoked" => format!(
            "API key {} ({}, {}…) was {}",
            text(&data["apiKey"]["name"]),
            text(&data["apiKey"]["role"]),
            text(&data["apiKey"]["prefix"]),
            action.trim_start_matches("api.key.")
        ),
        "secret.upserted" => format!("Secret {} was set", text(&data["secret"]["name"])),
        "secret.deleted" => format!("Secret {} was deleted", text(&data["secret"]["name"])),
        "plugin.installed" | "plugin.removed" => format!(
            "Plugin {}@{} was {}",
            text(&data["plugin"]["name"]),
            text(&data["plugin"]["version"]),
            action.trim_start_matches("plugin.")
        ),
        "destination.created" | "destination.updated" | "destination.deleted" => {
            format!(
                "Event destination {} was {}",
                text(&data["destination"]["name"]),
                action.trim_start_matches("destination.")
            )
        }
        "destination.disabled" => {
            format!(
                "Event destination {} was disabled: {}",
                text(&data["destination"]["name"]),
                text(&data["reason"])
            )
        }
        "destination.loop.stopped" => {
            format!(
                "Event destination {} stopped a delivery loop: {}",
                text(&data["destination"]["name"]),
                text(&data["reason"])
            )
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_heads_parse_with_or_without_a_signature() {
        let hash = "ab".repeat(32);
        let head: ExternalHead = format!("12:{hash}").parse().unwrap();
        assert_eq!((head.seq, head.sig), (12, None));
        let signed: ExternalHead = format!("12:{hash}:{}", "CD".repeat(32)).parse().unwrap();
        assert_eq!(signed.sig.as_deref(), Some("cd".repeat(32).as_str()));
        for bad in [
            "",
            "12",
            "x:{h}",
            "-1:{h}",
            "12:abc",
            "12:{h}:short",
            "1:{h}:{h}:{h}",
        ] {
            let text = bad.replace("{h}", &hash);
            assert!(text.parse::<ExternalHead>().is_err(), "{text}");
        }
    }

    #[test]
    fn changed_columns_name_what_disagrees_with_the_envelope() {
        let body = json!({"id": "e1", "created": "2026-01-01T00:00:00.000Z", "platformId": "default",
            "projectId": "p1", "userId": null, "action": "flow.created"});
        let row = ChainRow {
            seq: 1,
            id: "e1".into(),
            created: "2026-01-01T00:00:00.000Z".into(),
            platform_id: "default".into(),
            project_id: Some("p1".into()),
            user_id: None,
            action: "flow.created".into(),
            body: body.to_string(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        };
        assert!(changed_columns(&row).is_empty());
        let edited = ChainRow {
            created: "2001-01-01T00:00:00.000Z".into(),
            user_id: Some("u".into()),
            action: "flow.deleted".into(),
            ..row.clone()
        };
        assert_eq!(changed_columns(&edited), ["created", "user_id", "action"]);
        let unreadable = ChainRow {
            body: "{".into(),
            ..row
        };
        assert_eq!(changed_columns(&unreadable), ["body"]);
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }

    #[test]
    fn every_action_the_engine_writes_has_a_human_summary() {
        for action in crate::store::AuditAction::ALL {
            let event = json!({"action": action.as_str(), "data": {}});
            let summary = with_summary(event)["summary"].as_str().unwrap().to_string();
            assert_ne!(summary, action.as_str().replace('.', " "), "{action}");
        }
        let failed = json!({"action": "user.signed.in", "userEmail": "a@example.com", "ip": "10.0.0.9",
            "data": {"success": false, "reason": "wrong-password"}});
        assert_eq!(
            with_summary(failed)["summary"],
            "Failed sign-in for a@example.com from 10.0.0.9 (wrong-password)"
        );
    }
}
