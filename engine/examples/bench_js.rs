//! Per-step cost of `javascript@1.0.0` (Boa inside the component): instantiate + run a 20-line
//! handler, and a handler doing one `fetch` to a loopback server. Measured in the same run
//! against the floors a step cannot beat: the `log` plugin (instantiate + a trivial call) and
//! `http-request` doing the same POST. Also reports the peak linear memory of a step.
//!
//! ```sh
//! cargo run --release -p hookflow --example bench_js [-- ITERATIONS]
//! ```

use axum::Router;
use axum::routing::post;
use hookflow::flow::hosts::HostPattern;
use hookflow::plugins::sandbox_with_plugins;
use hookflow::wasm::{Grants, Sandbox, StepContext, StepOutcome};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WARMUP: usize = 50;

/// Twenty lines of what Actions do: read the event, branch, build a payload, log.
const HANDLER: &str = r#"exports.onExecuteEventStream = async (event, api) => {
  const message = event.message;
  const user = message.data && message.data.object ? message.data.object : {};
  const tags = [];
  if (message.type.startsWith('user.')) tags.push('identity');
  if (user.email && user.email.endsWith('@example.com')) tags.push('internal');
  const payload = {
    id: message.id,
    type: message.type,
    at: new Date(message.time).toISOString(),
    who: user.email || 'unknown',
    verified: Boolean(user.email_verified),
    tags,
  };
  const summary = `${payload.type} for ${payload.who}`;
  if (tags.length === 0) {
    console.log('no tags for', summary);
  }
  return { summary, payload, size: JSON.stringify(payload).length };
};
"#;

const FETCH: &str = r#"exports.onExecuteEventStream = async (event, api) => {
  const response = await fetch(event.configuration.url, {
    method: 'POST',
    headers: { 'X-API-Key': 'k', 'content-type': 'application/json' },
    body: JSON.stringify(event.message),
  });
  return { status: response.status, body: await response.json() };
};
"#;

fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(iterations))
}

struct Case<'a> {
    name: &'a str,
    plugin: (&'a str, &'a str),
    input: String,
    grants: &'a Grants,
}

async fn bench(iterations: usize) -> anyhow::Result<()> {
    let app = Router::new().route(
        "/hook",
        post(|body: axum::body::Bytes| async move {
            axum::Json(json!({"ok": true, "bytes": body.len()}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let started = Instant::now();
    let sandbox = sandbox_with_plugins(None, 64 << 20, 64, &[]).await?;
    println!(
        "built-ins compiled and loaded in {:.1} s (no cache)",
        started.elapsed().as_secs_f64()
    );
    let event: Value =
        serde_json::from_str(include_str!("../../tests/fixtures/auth0-cloudevent.json"))?;
    let plain = Grants {
        event: Some(Arc::from(event.to_string())),
        ..Grants::default()
    };
    let http = Grants {
        allowed_hosts: Arc::new(vec![HostPattern::parse(&base).map_err(anyhow::Error::msg)?]),
        allow_local: true,
        event: Some(Arc::from(event.to_string())),
        ..Grants::default()
    };
    let url = format!("{base}/hook");
    let cases = [
        Case {
            name: "log@0.1.0 (floor: instantiate + trivial call)",
            plugin: ("log", "0.1.0"),
            input: json!({"message": "hello"}).to_string(),
            grants: &plain,
        },
        Case {
            name: "javascript@1.0.0, 20-line handler",
            plugin: ("javascript", "1.0.0"),
            input: json!({"code": HANDLER}).to_string(),
            grants: &plain,
        },
        Case {
            name: "http-request@0.1.0, one POST (floor for fetch)",
            plugin: ("http-request", "0.1.0"),
            input: json!({"method": "POST", "url": url, "json": event}).to_string(),
            grants: &http,
        },
        Case {
            name: "javascript@1.0.0, one fetch POST",
            plugin: ("javascript", "1.0.0"),
            input: json!({"code": FETCH, "url": url}).to_string(),
            grants: &http,
        },
    ];
    println!("iterations: {iterations} each, one at a time");
    println!("| step | p50 ms | p99 ms | peak linear memory |");
    println!("| --- | --- | --- | --- |");
    for case in &cases {
        let (p50, p99, peak) = measure(&sandbox, case, iterations).await?;
        println!(
            "| {} | {:.2} | {:.2} | {:.1} MiB |",
            case.name,
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            peak as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}

async fn measure(
    sandbox: &Sandbox,
    case: &Case<'_>,
    iterations: usize,
) -> anyhow::Result<(Duration, Duration, usize)> {
    let ctx = StepContext {
        run_id: "01900000-0000-7000-8000-000000000000".into(),
        flow_id: "01900000-0000-7000-8000-000000000001".into(),
        step_name: "step".into(),
        attempt: 1,
        test_run: false,
    };
    let timeout = Duration::from_secs(10);
    let (name, version) = case.plugin;
    let mut times = Vec::with_capacity(iterations);
    let mut peak = 0;
    for i in 0..WARMUP + iterations {
        let started = Instant::now();
        let report = sandbox
            .run(name, version, &ctx, &case.input, timeout, case.grants)
            .await;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            matches!(report.outcome, StepOutcome::Succeeded { .. }),
            "{} failed: {:?} {:?} {:?}",
            case.name,
            report.outcome,
            report.logs,
            report.refused_requests
        );
        peak = peak.max(report.peak_memory_bytes);
        if i >= WARMUP {
            times.push(elapsed);
        }
    }
    times.sort();
    Ok((times[times.len() / 2], times[times.len() * 99 / 100], peak))
}
