//! The `javascript` plugin: runs a JavaScript handler in the style of Auth0 Event Stream
//! Actions, so an Action written for Auth0 can be pasted into a step and run unchanged:
//!
//! ```js
//! exports.onExecuteEventStream = async (event, api) => {
//!   await fetch(event.secrets.URL, {
//!     method: 'POST',
//!     headers: { 'X-API-Key': event.secrets.API_KEY },
//!     body: JSON.stringify(event.message),
//!   });
//! };
//! ```
//!
//! The JavaScript engine is Boa, a JavaScript interpreter written in Rust, compiled into this
//! component: the script runs inside the same WebAssembly sandbox as every other plugin, with the
//! step's memory limit and deadline, and reaches the outside world only through the host
//! (`fetch` over `wasi:http` restricted to the step's `allowedHosts`, the granted secrets, the
//! flow's cache, the run trace).
//!
//! # What a script sees
//!
//! - **Loading.** `code` runs as a CommonJS-style script: `module = {exports: {}}`,
//!   `exports = module.exports`, and `require(name)` throws (no modules can be loaded). A syntax
//!   error fails the step for good (`SyntaxError at line L, column C: ...`), and so does an
//!   exception while loading. The handler is `exports.onExecuteEventStream` (Auth0) or else
//!   `exports.handler`.
//! - **Call.** `handler(event, api)`; a returned promise is driven to completion (promise jobs,
//!   `fetch`, timers). The step output is `JSON.stringify` of the result (`undefined` is
//!   `null`). A throw or a rejection fails the step as retryable, with the error's message (and
//!   `(at step.js:L:C)` when the stack has it); a result that is not JSON, or a promise that can
//!   never settle, fails it for good. Work still queued when the handler settles (an un-awaited
//!   `fetch`) is finished; pending timers are dropped.
//! - **`event`**: `message` (the trigger event as a CloudEvent), `secrets` (exactly the granted
//!   secrets), `configuration` (the step input without `code`), `run` (`id`, `flowId`,
//!   `stepName`, `attempt`, `testRun`).
//! - **`api.cache`**: Auth0's `get` / `set` / `delete` over the flow's cache.
//! - **Globals**: the ECMAScript built-ins Boa implements (ES2024 and more, no `Intl`, dates in
//!   UTC), `console` (`log info debug warn error trace dir assert`, at most 100 lines of 4 KiB),
//!   `fetch` / `Request` / `Response` / `Headers` / `AbortController`, `URL` /
//!   `URLSearchParams`, `TextEncoder` / `TextDecoder`, `atob` / `btoa`, `structuredClone`,
//!   `queueMicrotask`, `setTimeout` / `setInterval` and their `clear*`, and `crypto.randomUUID`
//!   / `crypto.getRandomValues`. No `process`, `Buffer`, `crypto.subtle` or Node modules.
//! - **`fetch`** goes through the host: only the step's `allowedHosts`, with the host's guards
//!   and limits. In test runs nothing is sent: the script gets `200` with an empty body and
//!   `x-hookflow-skipped: test run`, and the trace a warning naming the request.

pub mod executor;
pub mod fetch;
pub mod globals;
pub mod host;
pub mod runtime;

use hookflow_plugin_sdk::{Context, Descriptor, Plugin, StepError, Value, json};
use std::rc::Rc;

pub use host::{Host, SdkHost};
pub use runtime::RunInfo;

/// The exported plugin.
pub struct JavaScript;

impl Plugin for JavaScript {
    fn describe() -> Descriptor {
        Descriptor::new(
            "javascript",
            "1.0.0",
            "Run a JavaScript handler (Auth0 Event Stream Action style: \
             exports.onExecuteEventStream = async (event, api) => ...)",
        )
        .input_schema(json!({
            "type": "object",
            "required": ["code"],
            "properties": {
                "code": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": runtime::MAX_CODE_BYTES,
                    // Taken as written: event data rendered into source would be code injection.
                    "x-hookflow-raw": true,
                    "description": "CommonJS-style script that sets exports.onExecuteEventStream \
                                    or exports.handler to a function of (event, api)"
                }
            },
            "additionalProperties": true
        }))
        // The script reaches the outside only through fetch, which test runs stub; its cache
        // writes live only for the step in test runs. So the step may run in test runs.
        .side_effects(false)
    }

    fn run(ctx: Context, input: Value) -> Result<Value, StepError> {
        run_with_host(Rc::new(SdkHost), &ctx, input)
    }
}

/// Runs one step against `host`: checks the input, then runs the code (see [`runtime::run`]).
pub fn run_with_host(host: Rc<dyn Host>, ctx: &Context, input: Value) -> Result<Value, StepError> {
    let Value::Object(mut configuration) = input else {
        return Err(StepError::fatal("step input must be an object"));
    };
    let code = match configuration.remove("code") {
        Some(Value::String(code)) => code,
        Some(_) => return Err(StepError::fatal("field `code` must be a string")),
        None => return Err(StepError::fatal("field `code` is required")),
    };
    if code.trim().is_empty() {
        return Err(StepError::fatal("field `code` must not be empty"));
    }
    if code.len() > runtime::MAX_CODE_BYTES {
        return Err(StepError::fatal(format!(
            "field `code` is {} bytes; at most {} are allowed",
            code.len(),
            runtime::MAX_CODE_BYTES
        )));
    }
    let info = RunInfo {
        run_id: ctx.run_id.clone(),
        flow_id: ctx.flow_id.clone(),
        step_name: ctx.step_name.clone(),
        attempt: ctx.attempt,
        test_run: ctx.test_run,
    };
    runtime::run(host, &info, &code, Value::Object(configuration))
}

// Only the component exports the plugin; native builds (unit tests) drive `run_with_host`.
#[cfg(target_arch = "wasm32")]
hookflow_plugin_sdk::export_plugin!(JavaScript);

#[cfg(test)]
mod tests;
