//! `hookflow run list|show|retry`: runs on a server; `run list --follow` prints new runs as they
//! arrive until Ctrl-C.

use super::{Body, Connect, Remote, encode, print_json, text};
use crate::cli::table::Table;
use crate::cli::{Failure, trace, usage};
use crate::exec::RunResult;
use crate::store::{Cursor, RunStatus, StepRecord};
use reqwest::Method;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum RunCommand {
    /// List runs, newest first; --follow keeps printing new runs until Ctrl-C.
    List {
        /// Only runs of this flow.
        #[arg(long)]
        flow: Option<String>,
        /// Only runs in this status: QUEUED, RUNNING, SUCCEEDED, FAILED, TIMEOUT.
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this project.
        #[arg(long)]
        project: Option<String>,
        /// How many runs (1 to 500).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// After the list, poll every second and print each new run as a line (JSON Lines
        /// with --json) until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        connect: Connect,
    },
    /// Show a run: its status and every step's trace.
    Show {
        id: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Re-run a FAILED or TIMEOUT run from its failed step.
    Retry {
        id: String,
        #[command(flatten)]
        connect: Connect,
    },
}

pub async fn run(command: RunCommand) -> Result<ExitCode, Failure> {
    match command {
        RunCommand::List {
            flow,
            status,
            project,
            limit,
            follow,
            connect,
        } => {
            if !(1..=500).contains(&limit) {
                return Err(usage(format!(
                    "--limit must be between 1 and 500, got {limit}"
                )));
            }
            let remote = connect.remote()?;
            let mut query = format!("limit={limit}");
            for (name, value) in [
                ("flowId", &flow),
                ("status", &status),
                ("projectId", &project),
            ] {
                if let Some(v) = value {
                    let v = if name == "status" {
                        v.to_ascii_uppercase()
                    } else {
                        v.clone()
                    };
                    query.push_str(&format!("&{name}={}", encode(&v)));
                }
            }
            let page = remote.get(&format!("/v1/flow-runs?{query}")).await?;
            let runs: Vec<Value> = page["data"].as_array().cloned().unwrap_or_default();
            if follow {
                return follow_runs(&remote, &query, runs, connect.json).await;
            }
            if connect.json {
                print_json(&Value::Array(runs));
            } else if runs.is_empty() {
                println!("no runs");
            } else {
                let mut table = run_table();
                for r in &runs {
                    table.row(run_cells(r));
                }
                table.print();
            }
            Ok(ExitCode::SUCCESS)
        }
        RunCommand::Show { id, connect } => {
            let remote = connect.remote()?;
            let run = remote
                .get(&format!("/v1/flow-runs/{}", encode(&id)))
                .await?;
            if connect.json {
                print_json(&run);
                return Ok(ExitCode::SUCCESS);
            }
            println!("run:      {}", text(&run["id"]));
            println!(
                "flow:     {} (version {})",
                text(&run["flowId"]),
                text(&run["flowVersion"])
            );
            println!("status:   {}", text(&run["status"]));
            println!("event:    {}", text(&run["eventId"]));
            println!(
                "env:      {}   attempt {}",
                text(&run["environment"]),
                text(&run["attempt"])
            );
            println!("created:  {}", text(&run["created"]));
            println!("finished: {}", text(&run["finished"]));
            if !run["error"].is_null() {
                println!("error:    {}", super::one_line(&text(&run["error"])));
            }
            println!();
            print_trace(&remote, &run).await;
            Ok(ExitCode::SUCCESS)
        }
        RunCommand::Retry { id, connect } => {
            let remote = connect.remote()?;
            let answer = remote
                .call(
                    Method::POST,
                    &format!("/v1/flow-runs/{}/retry", encode(&id)),
                    Body::None,
                )
                .await?;
            if connect.json {
                print_json(&answer);
            } else {
                println!(
                    "retrying run {} ({})",
                    text(&answer["runId"]),
                    text(&answer["status"])
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The run's steps as the trace tree `flow run` prints, from the flow version it ran; a plain
/// step table when that version cannot be read (the flow was deleted).
async fn print_trace(remote: &Remote, run: &Value) {
    let path = format!(
        "/v1/flows/{}/versions/{}",
        encode(run["flowId"].as_str().unwrap_or_default()),
        run["flowVersion"]
    );
    let steps: Option<Vec<StepRecord>> = serde_json::from_value(run["steps"].clone()).ok();
    let flow = match remote.get(&path).await {
        Ok(version) => crate::flow::flow_from_value(version["definition"].clone()).ok(),
        Err(_) => None,
    };
    if let (Some(flow), Some(steps)) = (flow, steps) {
        let result = RunResult {
            status: serde_json::from_value(run["status"].clone()).unwrap_or(RunStatus::Failed),
            error: run["error"].as_str().map(str::to_string),
            steps,
            duration_ms: run["durationMs"].as_f64().unwrap_or_default(),
        };
        print!("{}", trace::render(&flow, &result, trace::use_color()));
        return;
    }
    let mut table = Table::new(&["STEP", "STATUS", "ATTEMPTS", "DURATION", "ERROR"]);
    for s in run["steps"].as_array().into_iter().flatten() {
        table.row([
            text(&s["name"]),
            text(&s["status"]),
            text(&s["attempts"]),
            duration(&s["durationMs"]),
            super::one_line(&text(&s["error"])),
        ]);
    }
    table.print();
}

fn run_table() -> Table {
    Table::new(&[
        "ID", "FLOW", "STATUS", "ENV", "CREATED", "DURATION", "ERROR",
    ])
}

fn run_cells(r: &Value) -> [String; 7] {
    [
        text(&r["id"]),
        text(&r["flowId"]),
        text(&r["status"]),
        text(&r["environment"]),
        text(&r["created"]),
        duration(&r["durationMs"]),
        super::one_line(&text(&r["error"])),
    ]
}

fn duration(ms: &Value) -> String {
    match ms.as_f64() {
        Some(ms) if ms >= 1000.0 => format!("{:.1} s", ms / 1000.0),
        Some(ms) => format!("{ms:.0} ms"),
        None => "-".into(),
    }
}

/// How often `--follow` asks for new runs.
const POLL: Duration = Duration::from_secs(1);

/// Prints `first` (oldest first), then every run newer than the newest seen, polling with a
/// "newer than" cursor every second, until Ctrl-C (exit 0). Lines, not a table: a table's
/// columns cannot be aligned before its rows are known.
async fn follow_runs(
    remote: &Remote,
    query: &str,
    first: Vec<Value>,
    json: bool,
) -> Result<ExitCode, Failure> {
    use std::io::Write;
    let print = |run: &Value| {
        if json {
            println!("{run}");
        } else {
            println!("{}", run_cells(run).join("  ").trim_end());
        }
        let _ = std::io::stdout().flush();
    };
    let mut newest: Option<String> = first
        .first()
        .and_then(|r| r["id"].as_str())
        .map(str::to_string);
    for run in first.iter().rev() {
        print(run);
    }
    let poll = async {
        loop {
            tokio::time::sleep(POLL).await;
            // With no run yet there is no cursor: the first page is everything there is.
            let path = match &newest {
                Some(id) => format!(
                    "/v1/flow-runs?{query}&cursor={}",
                    encode(&Cursor::Before(id.clone()).encode())
                ),
                None => format!("/v1/flow-runs?{query}"),
            };
            let page = remote.get(&path).await?;
            let mut runs: Vec<Value> = page["data"].as_array().cloned().unwrap_or_default();
            // Newest first on the page: print in arrival order.
            runs.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            for run in &runs {
                let id = run["id"].as_str().unwrap_or_default();
                if newest.as_deref().is_some_and(|n| id <= n) {
                    continue;
                }
                print(run);
                newest = Some(id.to_string());
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), Failure>(())
    };
    tokio::select! {
        result = poll => result.map(|_| ExitCode::SUCCESS),
        _ = tokio::signal::ctrl_c() => Ok(ExitCode::SUCCESS),
    }
}
