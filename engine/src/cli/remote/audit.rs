//! `hookflow audit list|export|verify --url URL`: the audit log through a server's API, with
//! the caller's own view of it (a project admin sees their projects' events; the chain verdict
//! in full for platform admins and auditors). Without a server URL (`--url` or `HOOKFLOW_URL`)
//! the same commands read the database directly (`cli::mod`), as before.

use super::{Remote, encode, print_json, text};
use crate::cli::progress::{Progress, Unit};
use crate::cli::table::Table;
use crate::cli::{Failure, usage};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Audit commands go to a server when one is named; otherwise they read the database.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditServer {
    /// Read the audit log through this server's API instead of the database.
    #[arg(long = "url", env = "HOOKFLOW_URL")]
    pub url: Option<String>,
    /// With --url: the API key or admin token (default: HOOKFLOW_TOKEN, HOOKFLOW_ADMIN_TOKEN,
    /// else the data directory's admin-token file).
    #[arg(long, hide_env_values = true)]
    pub token: Option<String>,
    /// list and verify: print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl AuditServer {
    /// The server to ask, when one was named.
    pub fn remote(&self) -> Result<Option<Remote>, Failure> {
        match &self.url {
            Some(url) => Remote::new(url, self.token.as_deref()).map(Some),
            None => Ok(None),
        }
    }
}

fn actions_query(actions: &[String]) -> String {
    actions
        .iter()
        .map(|a| format!("&action={}", encode(a)))
        .collect()
}

/// The newest `limit` events as a table (or JSON).
pub async fn list(
    remote: &Remote,
    limit: u32,
    actions: &[String],
    json: bool,
) -> Result<ExitCode, Failure> {
    let page = remote
        .get(&format!(
            "/v1/audit-events?limit={}{}",
            limit.clamp(1, 500),
            actions_query(actions)
        ))
        .await?;
    let events = page["data"].as_array().cloned().unwrap_or_default();
    if json {
        print_json(&Value::Array(events));
        return Ok(ExitCode::SUCCESS);
    }
    print_events(&events);
    Ok(ExitCode::SUCCESS)
}

/// The audit table `audit list` prints, locally or from a server.
pub fn print_events(events: &[Value]) {
    let mut table = Table::new(&["CREATED", "ACTION", "IP", "USER", "SUMMARY"]);
    for e in events {
        table.row([
            text(&e["created"]),
            text(&e["action"]),
            text(&e["ip"]),
            text(&e["userId"]),
            super::one_line(&text(&e["summary"])),
        ]);
    }
    if table.is_empty() {
        println!("no audit events");
    } else {
        table.print();
    }
}

/// Off a terminal, an audit export reports every this many events.
const EXPORT_PROGRESS_EVERY: u64 = 10_000;

/// The progress of `audit export`, through a server or from the database (the number of events
/// is not known in advance).
pub fn export_progress(quiet: bool) -> Progress {
    Progress::new(
        "exporting",
        Unit::Items("events"),
        None,
        EXPORT_PROGRESS_EVERY,
        quiet,
    )
}

/// Streams the server's export (JSONL or CSV) to `output` or stdout as it arrives.
pub async fn export(
    remote: &Remote,
    format: &str,
    actions: &[String],
    output: Option<&Path>,
    mut progress: Progress,
) -> Result<ExitCode, Failure> {
    let path = format!(
        "/v1/audit-events/export?format={}{}",
        encode(format),
        actions_query(actions)
    );
    let mut response = remote.stream(&path).await?;
    let mut out: Box<dyn Write> = match output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let io = |e: std::io::Error| Failure::Internal(e.into());
    let mut lines = 0usize;
    loop {
        let chunk = response.chunk().await.map_err(|e| {
            Failure::Internal(anyhow::anyhow!(
                "the export from {} was cut off: {}",
                remote.base(),
                super::one_line(&e.to_string())
            ))
        })?;
        let Some(chunk) = chunk else { break };
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        out.write_all(&chunk).map_err(io)?;
        progress.show(events(format, lines), String::new);
    }
    out.flush().map_err(io)?;
    progress.finish(events(format, lines), String::new);
    if let Some(path) = output {
        eprintln!(
            "exported {} events to {}",
            events(format, lines),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Events in an export of `lines` lines: the CSV header is a line too; JSON Lines have none.
fn events(format: &str, lines: usize) -> u64 {
    let lines = lines as u64;
    if format == "csv" {
        lines.saturating_sub(1)
    } else {
        lines
    }
}

/// The chain verdict: exit 0 when intact, 1 when broken (as the local `audit verify`).
/// `head` (`SEQ:HASH[:SIG]`, kept elsewhere) is checked by the server too. The server's
/// findings are printed one per line; a project admin's answer is only `intact` (the chain
/// spans every project), and says so.
pub async fn verify(remote: &Remote, head: Option<&str>, json: bool) -> Result<ExitCode, Failure> {
    let path = match head {
        Some(head) => format!("/v1/audit-events/verify?head={}", encode(head)),
        None => "/v1/audit-events/verify".to_string(),
    };
    let verdict = remote.get(&path).await?;
    let intact = verdict["intact"] == true;
    let problems = verdict["problems"].as_array().cloned().unwrap_or_default();
    if json {
        print_json(&verdict);
    } else if intact {
        match (verdict["events"].as_u64(), verdict["headSeq"].as_i64()) {
            (Some(n), Some(seq)) => println!(
                "audit chain intact: {n} events verified, head {seq}:{}",
                text(&verdict["headHash"])
            ),
            (Some(n), None) => println!("audit chain intact: {n} events verified"),
            _ => println!("audit chain intact"),
        }
    } else if !problems.is_empty() {
        eprintln!("audit chain BROKEN:");
        for problem in &problems {
            eprintln!("  {}", super::one_line(&text(&problem["message"])));
        }
    } else if verdict["brokenAt"].is_object() {
        let broken = &verdict["brokenAt"];
        eprintln!(
            "audit chain BROKEN at seq {}: {}",
            text(&broken["seq"]),
            super::one_line(&text(&broken["reason"]))
        );
    } else {
        eprintln!(
            "audit chain BROKEN (the findings are shown to platform admins and auditors only)"
        );
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
