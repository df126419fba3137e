//! Reading the engine's audit log back: chain verification (tamper evidence), retention, and the
//! one-line summaries the API and the CLI show. Writing happens in `store`, in the same transaction as each change.

pub mod query;

use crate::catalog::Catalog;
use crate::store::audit::{GENESIS, chain_hash};
use crate::store::{DynStore, StoreError};
use serde_json::{Value, json};

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub id: String,
    pub reason: String,
}

/// Walks the whole chain. `Ok(n)` when all `n` events verify; otherwise the first broken link.
/// After retention pruned the oldest events, the chain is checked from the oldest remaining
/// event's link on.
pub async fn verify(store: &DynStore) -> Result<Result<u64, BrokenLink>, StoreError> {
    let first = store.audit_chain(0, 1).await?;
    let mut previous = match first.first() {
        Some(row) if row.seq > 1 => row.prev_hash.clone(),
        _ => GENESIS.to_string(),
    };
    let mut after = 0;
    let mut count = 0;
    loop {
        let rows = store.audit_chain(after, 1000).await?;
        if rows.is_empty() {
            return Ok(Ok(count));
        }
        for row in rows {
            if row.prev_hash != previous {
                let reason = "its predecessor link does not match the previous event (an event before it was deleted, inserted or reordered)".to_string();
                return Ok(Err(BrokenLink {
                    seq: row.seq,
                    id: row.id,
                    reason,
                }));
            }
            if chain_hash(&row.prev_hash, &row.body) != row.hash {
                let reason =
                    "its content does not match its hash (the event was edited)".to_string();
                return Ok(Err(BrokenLink {
                    seq: row.seq,
                    id: row.id,
                    reason,
                }));
            }
            previous = row.hash;
            after = row.seq;
            count += 1;
        }
    }
}

/// Deletes audit events older than `days`, archiving them first (gzip JSONL, one file per day,
/// appended as gzip members) when `archive_dir` is set. Returns how many were deleted.
pub async fn enforce_retention(
    store: &DynStore,
    days: u32,
    archive_dir: Option<&std::path::Path>,
) -> anyhow::Result<u64> {
    use std::io::Write;
    let cutoff = (chrono::Utc::now() - chrono::Duration::days(i64::from(days)))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut total = 0;
    loop {
        let batch = store.expired_audit(&cutoff, 1000).await?;
        let Some(&(last_seq, _, _)) = batch.last() else {
            return Ok(total);
        };
        // Archive (and sync) first, delete after: a crash in between archives a batch twice at
        // worst, never loses one.
        if let Some(dir) = archive_dir {
            std::fs::create_dir_all(dir)?;
            let mut by_day: std::collections::BTreeMap<String, Vec<&str>> =
                std::collections::BTreeMap::new();
            for (_, created, body) in &batch {
                by_day
                    .entry(created.chars().take(10).collect())
                    .or_default()
                    .push(body);
            }
            for (day, bodies) in by_day {
                let path = dir.join(format!("audit-{day}.jsonl.gz"));
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
                for body in bodies {
                    gz.write_all(body.as_bytes())?;
                    gz.write_all(b"\n")?;
                }
                gz.finish()?.sync_all()?;
            }
        }
        store.delete_audit_through(last_seq).await?;
        total += batch.len() as u64;
    }
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
        "flow.created" | "flow.updated" | "flow.deleted" => {
            let verb = action.trim_start_matches("flow.");
            format!(
                "Flow {} was {verb} (version {})",
                text(&data["flow"]["displayName"]),
                data["flow"]["version"]
            )
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
        "plugin.installed" => format!(
            "Plugin {}@{} was installed",
            text(&data["plugin"]["name"]),
            text(&data["plugin"]["version"])
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
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
