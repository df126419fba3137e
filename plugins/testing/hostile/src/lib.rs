//! The `hostile` plugin: misbehaves on request so that the engine's tests can prove the sandbox
//! holds (CPU and memory limits, traps, panics, output caps, retries).
//!
//! Never install it in a real deployment. `input.mode` picks the behaviour; see `run`.

use core::sync::atomic::{AtomicU64, Ordering};
use std::io::Write;
use std::time::Duration;

use hookflow_plugin_sdk::{
    Context, Descriptor, Level, Plugin, StepError, Value, export_plugin, json, log,
};

/// The exported plugin.
struct Hostile;

impl Plugin for Hostile {
    fn describe() -> Descriptor {
        Descriptor::new(
            "hostile",
            "0.1.0",
            "Misbehave on purpose (tests of the plugin sandbox only)",
        )
        .input_schema(json!({
            "type": "object",
            "required": ["mode"],
            "properties": { "mode": { "type": "string" } }
        }))
        .side_effects(false)
    }

    fn run(ctx: Context, input: Value) -> Result<Value, StepError> {
        let mode = input
            .get("mode")
            .and_then(Value::as_str)
            .ok_or_else(|| StepError::fatal("field `mode` must be a string"))?;
        match mode {
            "echo" => Ok(json!({
                "input": input,
                "context": {
                    "runId": ctx.run_id,
                    "flowId": ctx.flow_id,
                    "stepName": ctx.step_name,
                    "attempt": ctx.attempt,
                    "testRun": ctx.test_run,
                }
            })),
            "loop" => spin(),
            "alloc" => hoard(),
            "trap" => core::arch::wasm32::unreachable(),
            "panic" => panic!("hostile plugin panicked on purpose"),
            "fail" => Err(StepError::retryable("requested failure")),
            "fatal" => Err(StepError::fatal("requested fatal failure")),
            "fail-until" => {
                let attempts = uint(&input, "attempts")?;
                if u64::from(ctx.attempt) < attempts {
                    Err(StepError::retryable(format!(
                        "attempt {} of {attempts} fails on purpose",
                        ctx.attempt
                    )))
                } else {
                    Ok(json!({ "attempt": ctx.attempt }))
                }
            }
            "sleep" => {
                let ms = uint(&input, "ms")?;
                std::thread::sleep(Duration::from_millis(ms));
                Ok(json!({ "slept": ms }))
            }
            "big-output" => {
                let bytes = usize::try_from(uint(&input, "bytes")?)
                    .map_err(|_| StepError::fatal("field `bytes` is too large"))?;
                Ok(json!({ "data": "x".repeat(bytes) }))
            }
            "stdout-flood" => flood(),
            "fields" => {
                let bytes = match input.get("bytes") {
                    None => 12 << 10,
                    Some(_) => uint(&input, "bytes")?,
                };
                let count = match input.get("count") {
                    None => usize::MAX,
                    Some(_) => uint(&input, "count")? as usize,
                };
                let kept = hoard_fields(bytes as usize, count)?;
                // Hold them (`holdMs`), so that several steps hoard at the same time.
                if input.get("holdMs").is_some() {
                    std::thread::sleep(Duration::from_millis(uint(&input, "holdMs")?));
                }
                Ok(json!({ "headerMaps": kept.len() }))
            }
            "log" => {
                let count = match input.get("count") {
                    None => 1,
                    Some(_) => uint(&input, "count")?,
                };
                let message = input
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("hostile plugin log line");
                for _ in 0..count {
                    log(Level::Info, message);
                }
                Ok(json!({}))
            }
            other => Err(StepError::fatal(format!("unknown mode `{other}`"))),
        }
    }
}

/// Reads a required non-negative integer field.
fn uint(input: &Value, field: &str) -> Result<u64, StepError> {
    input
        .get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| StepError::fatal(format!("field `{field}` must be a non-negative integer")))
}

/// Burns CPU forever; the atomic counter and `black_box` keep the optimiser from proving the
/// loop has no effect.
fn spin() -> ! {
    let counter = AtomicU64::new(0);
    loop {
        counter.fetch_add(1, Ordering::Relaxed);
        core::hint::black_box(&counter);
    }
}

/// Allocates 1 MiB chunks forever. Non-zero bytes force every page to be written, so the memory
/// is really committed rather than left as untouched zero pages.
fn hoard() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        chunks.push(vec![0xA5u8; 1 << 20]);
        core::hint::black_box(&mut chunks);
    }
}

/// Creates `count` `wasi:http` header maps holding `bytes` each and returns them all: memory
/// the host holds for the guest, outside its linear-memory limit. Fails when the host refuses
/// a header (a host that refuses a new map traps the step instead).
fn hoard_fields(bytes: usize, count: usize) -> Result<Vec<wasi::http::types::Fields>, StepError> {
    let value = vec![b'v'; bytes];
    let mut kept = Vec::new();
    while kept.len() < count {
        let fields = wasi::http::types::Fields::new();
        if let Err(error) = fields.append("x-hoard", &value) {
            return Err(StepError::fatal(format!(
                "the host refused a header after {} header maps: {error:?}",
                kept.len()
            )));
        }
        kept.push(fields);
        core::hint::black_box(&kept);
    }
    Ok(kept)
}

/// Writes to stdout forever, ignoring write errors so a host that closes or caps stdout still
/// faces a plugin that never returns.
fn flood() -> ! {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut line: u64 = 0;
    loop {
        let _ = writeln!(out, "hostile plugin stdout flood line {line}");
        line = line.wrapping_add(1);
    }
}

export_plugin!(Hostile);
