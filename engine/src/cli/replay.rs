//! `hookflow flow replay FLOW --events FILE.jsonl`: runs a flow over past events locally and
//! reports what its `threshold` steps would have fired (see [`crate::replay`]). FLOW is a flow
//! file, or the id of a flow on a server whose definition is fetched and replayed here.

use super::progress::{Progress, Unit};
use super::{Failure, ServerArgs, load_flow, local_scope, remote, usage};
use crate::exec::Executor;
use crate::flow;
use crate::replay::{self, ReplayReport};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// What `flow replay` was asked to do.
pub(super) struct ReplayArgs {
    pub flow: String,
    pub events: PathBuf,
    pub plugins: Vec<PathBuf>,
    pub server: ServerArgs,
    pub json: bool,
    pub quiet: bool,
}

/// Off a terminal, a replay of fewer events is quick enough to need no progress.
const PROGRESS_FROM: u64 = 10_000;

pub(super) async fn replay_command(args: ReplayArgs) -> Result<ExitCode, Failure> {
    for p in &args.plugins {
        if !p.exists() {
            return Err(usage(format!("--plugin {}: no such file", p.display())));
        }
    }
    let text = if args.events.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| usage(format!("--events -: cannot read standard input: {e}")))?;
        text
    } else {
        std::fs::read_to_string(&args.events)
            .map_err(|e| usage(format!("--events {}: {e}", args.events.display())))?
    };
    let events = replay::parse_json_lines(&text)
        .map_err(|e| usage(format!("--events {}: {e}", args.events.display())))?;
    drop(text);
    let sandbox = Arc::new(
        crate::plugins::sandbox_with_plugins(
            crate::plugins::user_cache_dir(),
            64 << 20,
            4,
            &args.plugins,
        )
        .await?,
    );
    let path = Path::new(&args.flow);
    let (flow, flow_id) = if path.exists() {
        let flow = load_flow(path, &sandbox)
            .map_err(|problems| usage(format!("{}: {}", args.flow, problems.join("; "))))?;
        (flow, "local".to_owned())
    } else {
        // Not a file: a flow id on the server (the same client, token and URL rules as every
        // command that talks to a server).
        let server = args.server.remote().map_err(|failure| match failure {
            Failure::Usage(super::UsageError(why)) => usage(format!(
                "{} is not a file, nor a flow id a server can be asked for: {why}",
                args.flow
            )),
            other => other,
        })?;
        let record = server
            .get(&format!("/v1/flows/{}", remote::encode(&args.flow)))
            .await?;
        let flow = flow::flow_from_value(record["definition"].clone())
            .map_err(|p| usage(format!("flow {}: {p}", args.flow)))?;
        (flow, args.flow.clone())
    };
    let executor =
        Executor::new(sandbox, None).with_memory(Arc::new(crate::memory::LocalMemory::default()));
    let started = Instant::now();
    let total = events.len() as u64;
    let mut meter = Progress::new(
        "replaying",
        Unit::Items("events"),
        Some(total),
        PROGRESS_FROM,
        args.quiet,
    );
    let report = replay::replay(
        &executor,
        &local_scope(),
        &flow_id,
        &flow,
        events,
        |done, _, alerts| meter.show(done as u64, || format!(", {alerts} alerts")),
    )
    .await;
    meter.finish(total, || format!(", {} alerts", report.alerts.len()));
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Failure::Internal(e.into()))?
        );
    } else {
        print_report(&flow.name, &report, seconds);
    }
    Ok(if report.failed_runs == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(name: &str, report: &ReplayReport, seconds: f64) {
    let rate = report.events as f64 / seconds.max(1e-9);
    println!(
        "replayed {} event{} through {name:?} in {seconds:.2} s ({rate:.0} events/s)",
        report.events,
        if report.events == 1 { "" } else { "s" }
    );
    match report.alerts.len() {
        0 => println!("no alerts"),
        n => println!("{n} alert{}:", if n == 1 { "" } else { "s" }),
    }
    for alert in &report.alerts {
        let ids = alert.event_ids.join(", ");
        let quiet = if alert.suppressed_before > 0 {
            format!(" ({} suppressed before)", alert.suppressed_before)
        } else {
            String::new()
        };
        println!(
            "  {}  {}  key {:?}  count {}{quiet}  events: {ids}",
            alert.at, alert.step, alert.key, alert.count
        );
    }
    if report.failed_runs > 0 {
        println!("{} run(s) did not succeed:", report.failed_runs);
        for error in &report.errors {
            println!("  {error}");
        }
    }
}
