//! hookflow: a self-hosted, WebAssembly-extensible workflow engine for audit events.
//!
//! Data flows `api` (webhook intake, via `trigger`) → `store` (event + queued run, one
//! transaction) → `queue` (claim under lease) → `exec` (walk the `flow`: routers, action steps)
//! → `wasm` (sandboxed plugin call) → `store` (step results, run status). See
//! `docs/architecture.md` for the map.

pub mod access;
pub mod api;
pub mod audit;
pub mod builtins;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod console;
pub mod exec;
pub mod files;
pub mod flow;
pub mod generate;
pub mod mail;
pub mod memory;
pub mod metrics;
pub mod netguard;
pub mod plugins;
pub mod queue;
pub mod registry;
pub mod schedule;
pub mod secrets;
pub mod server;
pub mod store;
pub mod stream;
pub mod supervise;
pub mod testrun;
pub mod trigger;
pub mod wasm;
pub mod yaml;
