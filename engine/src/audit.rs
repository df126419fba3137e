//! Reading the engine's audit log back: chain verification (tamper evidence), retention, and the
//! one-line summaries the API and the CLI show. Writing happens in `store`, in the same transaction as each change.

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
}
