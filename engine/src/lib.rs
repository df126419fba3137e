//! hookflow: a self-hosted, WebAssembly-extensible workflow engine for audit events.
//!
//! Data flows `api` (webhook intake, via `trigger`) → `store` (event + queued run, one
//! transaction) → `queue` (claim under lease) → `exec` (walk the `flow`: routers, action steps)
//! → `wasm` (sandboxed plugin call) → `store` (step results, run status). See
//! `docs/architecture.md` for the map.

// Without the default `runtime` feature only the pure modules are built (no wasmtime, no
// server): what the fuzz targets in `fuzz/` need. Modules that use `wasm` (directly or through
// exec, registry, queue, api) are the ones gated.
pub mod access;
#[cfg(feature = "runtime")]
pub mod api;
pub mod archive;
pub mod audit;
#[cfg(feature = "runtime")]
pub mod builtins;
pub mod catalog;
#[cfg(feature = "runtime")]
pub mod cli;
#[cfg(feature = "runtime")]
pub mod config;
#[cfg(feature = "runtime")]
pub mod console;
pub mod detect;
#[cfg(feature = "runtime")]
pub mod exec;
pub mod files;
pub mod flow;
pub mod generate;
pub mod mail;
pub mod memory;
pub mod metrics;
pub mod netguard;
#[cfg(feature = "runtime")]
pub mod plugins;
#[cfg(feature = "runtime")]
pub mod queue;
#[cfg(feature = "runtime")]
pub mod registry;
#[cfg(feature = "runtime")]
pub mod replay;
#[cfg(feature = "runtime")]
pub mod schedule;
pub mod secrets;
#[cfg(feature = "runtime")]
pub mod server;
pub mod store;
pub mod stream;
pub mod supervise;
#[cfg(feature = "runtime")]
pub mod testrun;
pub mod trigger;
#[cfg(feature = "runtime")]
pub mod wasm;
pub mod yaml;
