//! Install time per plugin: what `POST /v1/plugins` (and a server start with an empty cache)
//! pays for each component — size check, validation, Cranelift compilation, import vetting,
//! linking and the `describe` call — with the disk cache off, so every install compiles.
//!
//! ```sh
//! cargo run --release -p hookflow --example bench_install -- [-n ITERATIONS] [PLUGIN.wasm ...]
//! # e.g. with the Python example plugin (built by plugins/python/build.sh):
//! cargo run --release -p hookflow --example bench_install -- plugins/python/pii-mask/pii-mask.wasm
//! ```
//! Measures every built-in plugin, then each component given, `ITERATIONS` times (default 5),
//! and prints a markdown table with the median and the fastest install, plus one
//! machine-readable line `BENCH_INSTALL {json}` per plugin.

use hookflow::builtins::BUILTIN_PLUGINS;
use hookflow::wasm::{Sandbox, SandboxConfig};
use std::time::{Duration, Instant};

const DEFAULT_ITERATIONS: usize = 5;

struct Row {
    plugin: String,
    bytes: usize,
    samples: Vec<Duration>,
}

fn main() -> anyhow::Result<()> {
    let mut iterations = DEFAULT_ITERATIONS;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-n" | "--iterations" => {
                let n = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("{arg} needs a number"))?;
                iterations = n.parse()?;
                anyhow::ensure!(iterations > 0, "{arg} must be positive");
            }
            "-h" | "--help" => {
                println!("usage: bench_install [-n ITERATIONS] [PLUGIN.wasm ...]");
                return Ok(());
            }
            _ => paths.push(std::path::PathBuf::from(arg)),
        }
    }
    let mut plugins: Vec<(String, Vec<u8>)> = BUILTIN_PLUGINS
        .iter()
        .map(|(name, wasm)| (format!("{name} (built-in)"), wasm.to_vec()))
        .collect();
    for path in &paths {
        let wasm =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        plugins.push((path.display().to_string(), wasm));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(bench(plugins, iterations))?;
    print_table(&rows, iterations);
    Ok(())
}

async fn bench(plugins: Vec<(String, Vec<u8>)>, iterations: usize) -> anyhow::Result<Vec<Row>> {
    // The server's defaults, minus the disk cache: every install compiles from scratch.
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: None,
        ..SandboxConfig::default()
    })?;
    let mut rows = Vec::new();
    for (label, wasm) in plugins {
        let mut samples = Vec::with_capacity(iterations);
        let mut name = String::new();
        for _ in 0..iterations {
            let started = Instant::now();
            let prepared = sandbox
                .prepare(&wasm, false)
                .await
                .map_err(|e| anyhow::anyhow!("installing {label}: {e}"))?;
            samples.push(started.elapsed());
            let info = prepared.info();
            name = format!("{}@{}", info.name, info.version);
            drop(prepared);
        }
        samples.sort_unstable();
        let row = Row {
            plugin: format!("`{name}` — {label}"),
            bytes: wasm.len(),
            samples,
        };
        eprintln!("{}: median {:.1} ms", row.plugin, ms(median(&row.samples)));
        println!(
            "BENCH_INSTALL {{\"plugin\":\"{name}\",\"bytes\":{},\"iterations\":{iterations},\"median_ms\":{:.2},\"min_ms\":{:.2},\"max_ms\":{:.2}}}",
            row.bytes,
            ms(median(&row.samples)),
            ms(row.samples[0]),
            ms(*row.samples.last().unwrap()),
        );
        rows.push(row);
    }
    Ok(rows)
}

fn print_table(rows: &[Row], iterations: usize) {
    println!();
    println!(
        "Install (validate + compile + link + describe, no disk cache), {} threads available, median of {iterations}:",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    println!("| plugin | size | install ms (median) | min ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for row in rows {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            row.plugin,
            size(row.bytes),
            ms(median(&row.samples)),
            ms(row.samples[0]),
            ms(*row.samples.last().unwrap()),
        );
    }
}

/// Median of sorted samples.
fn median(sorted: &[Duration]) -> Duration {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}
