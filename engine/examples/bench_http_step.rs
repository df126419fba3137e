//! Per-step overhead of `http-request@0.1.0`: the same POST to a local receiver, once as a
//! plugin step (instantiate, render nothing, policy check, wasi:http through the host, JSON
//! out) and once as a plain reqwest call from the host (the floor). The difference is what the
//! sandbox adds to an outbound HTTP step.
//!
//! ```sh
//! cargo run --release -p hookflow --example bench_http_step [-- ITERATIONS]
//! ```

use axum::Router;
use axum::routing::post;
use hookflow::flow::hosts::HostPattern;
use hookflow::plugins::sandbox_with_plugins;
use hookflow::wasm::{Grants, StepContext, StepOutcome};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WARMUP: usize = 500;

fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5_000);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(iterations))
}

async fn bench(iterations: usize) -> anyhow::Result<()> {
    let app = Router::new().route(
        "/hook",
        post(|body: axum::body::Bytes| async move {
            axum::Json(serde_json::json!({"ok": true, "bytes": body.len()}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let sandbox = sandbox_with_plugins(None, 64 << 20, 64, &[]).await?;
    let ctx = StepContext {
        run_id: "01900000-0000-7000-8000-000000000000".into(),
        flow_id: "01900000-0000-7000-8000-000000000001".into(),
        step_name: "call".into(),
        attempt: 1,
        test_run: false,
    };
    let grants = Grants {
        allowed_hosts: Arc::new(vec![HostPattern::parse(&base).map_err(anyhow::Error::msg)?]),
        allow_local: true,
        ..Grants::default()
    };
    let body = serde_json::json!({"action": "flow.run.finished", "data": {"flowRun": {"id": "r1", "status": "FAILED"}}});
    let input = serde_json::json!({"method": "POST", "url": format!("{base}/hook"), "json": body})
        .to_string();
    let timeout = Duration::from_secs(10);

    let step = || sandbox.run("http-request", "0.1.0", &ctx, &input, timeout, &grants);
    match &step().await.outcome {
        StepOutcome::Succeeded { output } => {
            println!("http-request -> status {}", output["status"])
        }
        other => anyhow::bail!("http-request did not succeed: {other:?}"),
    }
    let client = reqwest::Client::new();
    let direct = || {
        let client = client.clone();
        let url = format!("{base}/hook");
        let body = body.clone();
        async move {
            let response = client.post(url).json(&body).send().await?;
            response.bytes().await
        }
    };
    for _ in 0..WARMUP {
        step().await;
        direct().await?;
    }
    let mut in_step = Vec::with_capacity(iterations);
    let mut from_host = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let report = step().await;
        in_step.push(started.elapsed());
        anyhow::ensure!(
            matches!(report.outcome, StepOutcome::Succeeded { .. }),
            "step failed: {:?} {:?}",
            report.outcome,
            report.refused_requests
        );
        let started = Instant::now();
        direct().await?;
        from_host.push(started.elapsed());
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        (v[v.len() / 2], v[v.len() * 99 / 100])
    };
    let (step_p50, step_p99) = median(in_step);
    let (host_p50, host_p99) = median(from_host);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("iterations: {iterations}");
    println!(
        "http-request step: p50 {:.0} µs, p99 {:.0} µs",
        us(step_p50),
        us(step_p99)
    );
    println!(
        "plain reqwest call: p50 {:.0} µs, p99 {:.0} µs",
        us(host_p50),
        us(host_p99)
    );
    println!(
        "overhead of the step (p50): {:.0} µs",
        us(step_p50) - us(host_p50)
    );
    Ok(())
}
