//! Write hookflow plugins as plain Rust functions over JSON values.
//!
//! A hookflow plugin is a WebAssembly component targeting the `plugin` world of
//! `wit/plugin.wit`. That interface passes JSON as text and uses WIT records, which is exact but
//! tedious to write by hand. This crate hides the generated bindings: a plugin implements
//! [`Plugin`] over [`serde_json::Value`] and calls [`export_plugin!`] once.
//!
//! ```ignore
//! use hookflow_plugin_sdk::{export_plugin, json, Context, Descriptor, Plugin, StepError, Value};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn describe() -> Descriptor {
//!         Descriptor::new("hello", "0.1.0", "Greet someone")
//!             .input_schema(json!({"type": "object", "required": ["who"]}))
//!     }
//!
//!     fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
//!         let who = input["who"].as_str().ok_or_else(|| StepError::fatal("`who` must be a string"))?;
//!         Ok(json!({ "greeting": format!("hello, {who}") }))
//!     }
//! }
//!
//! export_plugin!(Hello);
//! ```
#![warn(missing_docs)]

pub use serde_json::{Map, Value, json};

/// Bindings generated from `wit/plugin.wit`.
///
/// Public only so that [`export_plugin!`] can reach them from the plugin's crate; plugin authors
/// should not need anything in here.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__hookflow_export_world",
        default_bindings_module: "::hookflow_plugin_sdk::bindings",
    });
}

pub mod http;
pub mod input;
pub mod mail;

use bindings::hookflow::plugin::control as wit_control;
use bindings::hookflow::plugin::log as wit_log;
use bindings::hookflow::plugin::memory as wit_memory;
use bindings::hookflow::plugin::secrets as wit_secrets;
use bindings::hookflow::plugin::types as wit;

/// What a plugin says about itself.
///
/// The host reads it once, when the plugin is installed: flows reference the plugin by
/// `name@version`, step inputs are validated against `input_schema` before a run starts, and
/// `side_effects` decides whether test runs may execute the step.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    /// Name that flows use to reference the plugin (`name@version`).
    pub name: String,
    /// Semantic version; several versions of one plugin can be installed side by side.
    pub version: String,
    /// One line for humans, shown by `GET /v1/plugins`.
    pub description: String,
    /// JSON Schema that the rendered step input must satisfy, so bad flows fail at save time
    /// rather than mid-run.
    pub input_schema: Value,
    /// True when running the step changes something outside the run; test runs skip such steps
    /// unless asked to run them live.
    pub side_effects: bool,
}

impl Descriptor {
    /// Starts a descriptor that accepts any object and has no side effects, the safe defaults
    /// for a pure step; refine it with [`Descriptor::input_schema`] and
    /// [`Descriptor::side_effects`].
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Descriptor {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            input_schema: json!({ "type": "object" }),
            side_effects: false,
        }
    }

    /// Sets the schema the host validates step input against, so that a plugin can rely on
    /// the shape of its input instead of re-checking every field.
    pub fn input_schema(mut self, schema: Value) -> Self {
        self.input_schema = schema;
        self
    }

    /// Marks whether the step reaches outside the run, so test runs know to skip it.
    pub fn side_effects(mut self, side_effects: bool) -> Self {
        self.side_effects = side_effects;
        self
    }
}

/// Where a step runs: lets a plugin log usefully and behave differently on retries or in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The run this step belongs to, for correlating log lines and idempotency keys.
    pub run_id: String,
    /// The flow that defines the step.
    pub flow_id: String,
    /// The step's name within the flow.
    pub step_name: String,
    /// 1 for the first attempt, 2 for the first retry, ...; lets a plugin tell a retry apart.
    pub attempt: u32,
    /// True for runs started from `POST /v1/flows/{id}/test`, so a plugin can avoid real effects.
    pub test_run: bool,
}

/// Why a step failed, and whether trying again could help.
///
/// The engine retries retryable errors up to the step's attempt limit and gives up at once on
/// fatal ones, so choose by asking "would the same input succeed later?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    /// Shown in the run trace; say what was wrong and, for bad input, which field.
    pub message: String,
    /// False when retrying cannot help (bad input); the engine then skips remaining attempts.
    pub retryable: bool,
}

impl StepError {
    /// An error that retrying will not fix, such as invalid input; saves the engine's retries.
    pub fn fatal(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            retryable: false,
        }
    }

    /// A transient error (a timeout, a busy service) that a later attempt may not hit.
    pub fn retryable(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            retryable: true,
        }
    }
}

impl core::fmt::Display for StepError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StepError {}

/// A hookflow plugin: two plain functions over JSON values.
///
/// Implement it on a unit struct and pass that type to [`export_plugin!`].
pub trait Plugin {
    /// Describes the plugin. The host calls it once at install time, so it must be cheap and
    /// must not depend on anything but the code itself.
    fn describe() -> Descriptor;

    /// Runs one step. `input` is the step's input with templates already rendered by the host;
    /// the returned value becomes the step's output, which later steps can template against.
    fn run(ctx: Context, input: Value) -> Result<Value, StepError>;
}

/// How important a log line is; the host keeps the level with the message in the run trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Detail useful only when diagnosing the plugin itself.
    Debug,
    /// Normal progress worth seeing in the trace.
    Info,
    /// Something odd that did not stop the step.
    Warn,
    /// Something failed; usually followed by the step returning an error.
    Error,
}

impl Level {
    /// Parses the lowercase name used in flow files (`debug`, `info`, `warn`, `error`), so
    /// plugins that take a level as input need not repeat the mapping.
    pub fn parse(name: &str) -> Option<Level> {
        match name {
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }

    /// The lowercase name used in flow files; the inverse of [`Level::parse`].
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Records a message in the run trace, attached to the current step.
///
/// Prefer this to printing: the host keeps log lines with the step (capped in number and size),
/// whereas stdout is not part of the trace.
pub fn log(level: Level, msg: &str) {
    let level = match level {
        Level::Debug => wit_log::Level::Debug,
        Level::Info => wit_log::Level::Info,
        Level::Warn => wit_log::Level::Warn,
        Level::Error => wit_log::Level::Error,
    };
    wit_log::log(level, msg);
}

/// Reads a secret that the flow grants to this step (the step's `secrets` list).
///
/// A secret that is not granted reads as `None`, exactly like one that does not exist, so the
/// error a plugin reports for `None` should name the secret and say it must be granted.
pub fn secret(name: &str) -> Option<String> {
    wit_secrets::get(name)
}

/// Ends the run after this step: the run finishes with status SUCCEEDED and `reason` recorded,
/// and later steps do not run. The step itself still returns its output normally.
pub fn end_run(reason: &str) {
    wit_control::end_run(reason);
}

/// Sets the HTTP response that a `/sync` webhook caller receives once the run finishes. The
/// last call in a run wins. The host refuses a status outside 200..=599 and headers it owns
/// (`content-length`, `transfer-encoding`, `connection`, ...), with a message saying which.
pub fn respond(status: u16, headers: &[(String, String)], body: &str) -> Result<(), StepError> {
    wit_control::respond(&wit_control::HttpResponse {
        status,
        headers: headers.to_vec(),
        body: body.to_string(),
    })
    .map_err(StepError::fatal)
}

/// Records `key` in the flow's durable memory, shared by all its runs. Returns true the first
/// time a key is seen ("sign-in from a new IP"). Test runs record nothing, so a test run
/// answers whether the key is unknown without changing that.
pub fn remember(key: &str) -> Result<bool, StepError> {
    bindings::hookflow::plugin::memory::remember(key).map_err(StepError::retryable)
}

/// The names of the secrets granted to this step that are set, for plugins that hand every
/// granted secret to user code (the `javascript` plugin's `event.secrets`). Never a name the
/// step is not granted; read each value with [`secret`].
pub fn secret_names() -> Vec<String> {
    wit_secrets::names()
}

/// A value in the flow's cache ([`cache_get`], [`cache_set`]) and the end of its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The cached string.
    pub value: String,
    /// When the entry expires, in milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// Why a cache call failed, as the host reports it, so plugins can pass the code on to user
/// code unchanged (Auth0's `api.cache` reports `{type: "error", code}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheError {
    /// `INVALID_ARGUMENT` (key or value too long, lifetime in the past), `QUOTA_EXCEEDED` (too
    /// many live entries in the flow) or `UNAVAILABLE` (the store could not be reached; worth
    /// retrying).
    pub code: String,
    /// Readable explanation.
    pub message: String,
}

impl core::fmt::Display for CacheError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for CacheError {}

impl From<wit_memory::CacheEntry> for CacheEntry {
    fn from(e: wit_memory::CacheEntry) -> Self {
        CacheEntry {
            value: e.value,
            expires_at: e.expires_at,
        }
    }
}

impl From<wit_memory::CacheError> for CacheError {
    fn from(e: wit_memory::CacheError) -> Self {
        CacheError {
            code: e.code,
            message: e.message,
        }
    }
}

/// Reads `key` from the flow's cache of short-lived strings, shared by all its runs (Auth0
/// Actions' `api.cache`). `None` when the key is absent or expired.
pub fn cache_get(key: &str) -> Result<Option<CacheEntry>, CacheError> {
    wit_memory::cache_get(key)
        .map(|entry| entry.map(CacheEntry::from))
        .map_err(CacheError::from)
}

/// Stores `value` under `key` in the flow's cache until `expires_at` (ms since the epoch) or
/// for `ttl_ms`; with neither, for 24 hours (the host caps lifetimes at 24 hours and enforces
/// the sizes). Returns what was stored. In test runs the value lives only for the rest of the
/// step.
pub fn cache_set(
    key: &str,
    value: &str,
    ttl_ms: Option<u64>,
    expires_at: Option<i64>,
) -> Result<CacheEntry, CacheError> {
    wit_memory::cache_set(key, value, ttl_ms, expires_at)
        .map(CacheEntry::from)
        .map_err(CacheError::from)
}

/// Removes `key` from the flow's cache; true when a live entry was removed.
pub fn cache_delete(key: &str) -> Result<bool, CacheError> {
    wit_memory::cache_delete(key).map_err(CacheError::from)
}

/// The event that started the run, as CloudEvents 1.0 JSON text, for plugins that hand the
/// whole event to user code. A trigger body that already is a CloudEvent is passed as it is;
/// any other JSON body is wrapped by the host.
pub fn cloud_event() -> String {
    bindings::hookflow::plugin::event::cloud_event()
}

/// Glue between [`Plugin`] and the generated bindings, used by [`export_plugin!`].
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use crate::bindings::Guest;
    pub use crate::bindings::hookflow::plugin::types::{
        Descriptor as WitDescriptor, RunContext as WitRunContext, StepError as WitStepError,
    };

    pub fn describe<P: Plugin>() -> wit::Descriptor {
        let d = P::describe();
        wit::Descriptor {
            name: d.name,
            version: d.version,
            description: d.description,
            input_schema: d.input_schema.to_string(),
            side_effects: d.side_effects,
        }
    }

    pub fn run<P: Plugin>(ctx: wit::RunContext, input: String) -> Result<String, wit::StepError> {
        let ctx = Context {
            run_id: ctx.run_id,
            flow_id: ctx.flow_id,
            step_name: ctx.step_name,
            attempt: ctx.attempt,
            test_run: ctx.test_run,
        };
        let result = match serde_json::from_str::<Value>(&input) {
            Ok(input) => P::run(ctx, input),
            Err(e) => Err(StepError::fatal(format!(
                "step input is not valid JSON: {e}"
            ))),
        };
        match result {
            Ok(output) => Ok(output.to_string()),
            Err(e) => Err(wit::StepError {
                message: e.message,
                retryable: e.retryable,
            }),
        }
    }
}

/// Makes a type implementing [`Plugin`] the component's exports.
///
/// Use it exactly once per plugin crate (the crate must be a `cdylib`): a component has one
/// `describe` and one `run`.
#[macro_export]
macro_rules! export_plugin {
    ($t:ty) => {
        const _: () = {
            struct __HookflowPluginExports;

            impl $crate::__private::Guest for __HookflowPluginExports {
                fn describe() -> $crate::__private::WitDescriptor {
                    $crate::__private::describe::<$t>()
                }

                fn run(
                    context: $crate::__private::WitRunContext,
                    input: ::std::string::String,
                ) -> ::core::result::Result<::std::string::String, $crate::__private::WitStepError>
                {
                    $crate::__private::run::<$t>(context, input)
                }
            }

            $crate::bindings::__hookflow_export_world!(
                __HookflowPluginExports with_types_in $crate::bindings
            );
        };
    };
}
