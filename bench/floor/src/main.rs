//! `hookflow-floor`: the HTTP floor of the benchmarks.
//!
//! The least work a server on hookflow's HTTP stack (axum 0.8, hyper, tokio multi-thread runtime
//! with one worker per core, mimalloc) can do for a webhook: read the body under the same 1 MiB
//! limit, check the content type, parse the JSON, answer. No authentication, no database, no
//! queue. `bench.py` drives it with exactly the load of workload (a), so every hookflow figure
//! can be stated as a ratio of the floor measured in the same run on the same machine.
//!
//!   POST /v1/webhooks/{flowId}       -> 202 {"runId": "<uuid v7>"}
//!   POST /v1/webhooks/{flowId}/sync  -> 200 {"status": "SUCCEEDED"}
//!   anything that is not JSON        -> 400, body over the limit -> 413
//!
//! Usage: hookflow-floor [--listen 127.0.0.1:0] [--workers N] [--max-body-bytes 1048576]
//!                       [--parse value|validate]
//!
//! `--parse value` (default) builds a `serde_json::Value` tree of the body; `--parse validate`
//! only checks it is JSON (`IgnoredAny`), which is closer to what hookflow's intake does since it
//! stopped building a tree there (`trigger::parse_body` looks for the top-level `id` and skips the
//! rest). On start it prints one line on stdout, in the format of `hookflow serve`:
//! `hookflow-floor listening on http://127.0.0.1:PORT`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Parse {
    /// `serde_json::from_slice::<Value>`: a full tree.
    Value,
    /// `serde_json::from_slice::<IgnoredAny>`: a validating pass, no tree.
    Validate,
}

struct Config {
    listen: String,
    workers: Option<usize>,
    max_body_bytes: usize,
    parse: Parse,
}

const USAGE: &str = "usage: hookflow-floor [--listen ADDR] [--workers N] [--max-body-bytes N] [--parse value|validate]";

fn parse_args() -> Result<Config, String> {
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        workers: None,
        max_body_bytes: 1 << 20,
        parse: Parse::Value,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        if name == "-h" || name == "--help" {
            return Err(USAGE.into());
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?,
        };
        match name.as_str() {
            "--listen" => config.listen = value,
            "--workers" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| format!("--workers: not a number: {value}"))?;
                if n == 0 {
                    return Err("--workers must be positive".into());
                }
                config.workers = Some(n);
            }
            "--max-body-bytes" => {
                config.max_body_bytes = value
                    .parse()
                    .map_err(|_| format!("--max-body-bytes: not a number: {value}"))?
            }
            "--parse" => {
                config.parse = match value.as_str() {
                    "value" => Parse::Value,
                    "validate" => Parse::Validate,
                    _ => return Err(format!("--parse: value or validate, not {value}")),
                }
            }
            _ => return Err(format!("unknown argument {name}\n{USAGE}")),
        }
    }
    Ok(config)
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(c) => c,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    // Same runtime as `hookflow serve`: multi-thread, one worker per core unless told otherwise.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = config.workers {
        builder.worker_threads(n);
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let config = Arc::new(config);
    let app = Router::new()
        .route("/v1/webhooks/{flow_id}", post(receive))
        .route("/v1/webhooks/{flow_id}/sync", post(receive_sync))
        .with_state(config);
    // The line `hookflow serve` prints (engine/src/cli/mod.rs), which bench.py reads for the port.
    if let Ok(address) = listener.local_addr() {
        println!("hookflow-floor listening on http://{address}");
        let _ = std::io::stdout().flush();
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server: {e}"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

async fn receive(
    State(config): State<Arc<Config>>,
    Path(_flow_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(refused) = intake(&config, &headers, body).await {
        return refused;
    }
    let run_id = uuid::Uuid::now_v7().to_string();
    (StatusCode::ACCEPTED, Json(json!({ "runId": run_id }))).into_response()
}

async fn receive_sync(
    State(config): State<Arc<Config>>,
    Path(_flow_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(refused) = intake(&config, &headers, body).await {
        return refused;
    }
    (StatusCode::OK, Json(json!({ "status": "SUCCEEDED" }))).into_response()
}

/// Reads the body under the limit and checks it is JSON, as hookflow's intake does before
/// storing anything (`api/webhooks.rs` `read_limited`, `trigger::parse_body`).
async fn intake(config: &Config, headers: &HeaderMap, body: Body) -> Result<(), Response> {
    let limit = config.max_body_bytes;
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({ "error": format!("body is larger than the {limit}-byte limit") })),
        )
            .into_response()
    };
    let bad = |message: String| {
        (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return Err(too_large()),
        Err(error) => return Err(bad(format!("could not read the body: {error}"))),
    };
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let acceptable = essence.is_empty()
            || essence == "application/json"
            || essence.ends_with("+json")
            || essence == "text/plain"
            || essence == "application/x-www-form-urlencoded";
        if !acceptable {
            return Err(bad(format!(
                "expected a JSON body, but content-type is {essence:?}"
            )));
        }
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("body is empty; a JSON value is required".into()));
    }
    let parsed = match config.parse {
        Parse::Value => serde_json::from_slice::<serde_json::Value>(&bytes).map(drop),
        Parse::Validate => serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map(drop),
    };
    parsed.map_err(|e| bad(format!("body is not valid JSON: {e}")))
}
