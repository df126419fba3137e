//! Sandbox overhead per step: instantiate + call of the built-in `log@0.1.0` plugin in a fresh
//! store, exactly what `Sandbox::run` does for every action step.
//!
//! ```sh
//! cargo run --release -p hookflow --example bench_sandbox [-- ITERATIONS]
//! ```
//! Prints median / p90 / p99 / mean in microseconds and one machine-readable line
//! `BENCH_SANDBOX {json}` for `bench/run.sh`.

use hookflow::plugins::sandbox_with_plugins;
use hookflow::wasm::{Grants, StepContext, StepOutcome};
use std::time::{Duration, Instant};

const WARMUP: usize = 2_000;
const DEFAULT_ITERATIONS: usize = 20_000;
const INPUT: &str = r#"{"message":"hi"}"#;

fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(DEFAULT_ITERATIONS);
    // Same kind of runtime as the server (multi-threaded tokio), driven from one task so the
    // calls are strictly sequential.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(iterations))
}

async fn bench(iterations: usize) -> anyhow::Result<()> {
    let cache = std::env::temp_dir().join(format!("hookflow-bench-sandbox-{}", std::process::id()));
    let load_started = Instant::now();
    // Same constructor as `hookflow serve` (64 MiB step memory, 64 pool slots).
    let sandbox = sandbox_with_plugins(Some(cache.clone()), 64 << 20, 64, &[]).await?;
    let load_time = load_started.elapsed();
    let ctx = StepContext {
        run_id: "01900000-0000-7000-8000-000000000000".into(),
        flow_id: "01900000-0000-7000-8000-000000000001".into(),
        step_name: "note".into(),
        attempt: 1,
        test_run: false,
    };
    let timeout = Duration::from_secs(10);
    // No hosts, no secrets: what a `log` step gets.
    let grants = Grants::default();

    let first = sandbox
        .run("log", "0.1.0", &ctx, INPUT, timeout, &grants)
        .await;
    match &first.outcome {
        StepOutcome::Succeeded { output } => {
            println!("log@0.1.0 -> {output} (logs: {:?})", first.logs)
        }
        other => anyhow::bail!("log@0.1.0 did not succeed: {other:?}"),
    }
    for _ in 0..WARMUP {
        std::hint::black_box(
            sandbox
                .run("log", "0.1.0", &ctx, INPUT, timeout, &grants)
                .await,
        );
    }

    let mut samples = Vec::with_capacity(iterations);
    let mut failures = 0usize;
    let total_started = Instant::now();
    for _ in 0..iterations {
        let started = Instant::now();
        let report = sandbox
            .run("log", "0.1.0", &ctx, INPUT, timeout, &grants)
            .await;
        samples.push(started.elapsed());
        if !matches!(report.outcome, StepOutcome::Succeeded { .. }) {
            failures += 1;
        }
        std::hint::black_box(report);
    }
    let total = total_started.elapsed();
    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pct = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        us(samples[i])
    };
    let mean = us(total) / iterations as f64;
    let (p50, p90, p99, max) = (
        pct(0.50),
        pct(0.90),
        pct(0.99),
        us(*samples.last().unwrap()),
    );
    println!(
        "sandbox load (compile/cache + link + describe of built-ins): {:.1} ms",
        load_time.as_secs_f64() * 1e3
    );
    println!("iterations: {iterations} (after {WARMUP} warm-up), failures: {failures}");
    println!("instantiate+call log@0.1.0, fresh store per call (µs):");
    println!("  median {p50:.1}  p90 {p90:.1}  p99 {p99:.1}  max {max:.1}  mean {mean:.1}");
    println!(
        "  => {:.0} calls/s on one task; target median <= 30 µs: {}",
        1e6 / mean,
        if p50 <= 30.0 { "MET" } else { "MISSED" }
    );
    println!(
        "BENCH_SANDBOX {{\"iterations\":{iterations},\"failures\":{failures},\"median_us\":{p50:.2},\"p90_us\":{p90:.2},\"p99_us\":{p99:.2},\"max_us\":{max:.2},\"mean_us\":{mean:.2}}}"
    );
    drop(sandbox);
    let _ = std::fs::remove_dir_all(&cache);
    if failures > 0 {
        anyhow::bail!("{failures} calls did not succeed");
    }
    Ok(())
}
