//! The plugins that ship inside the binary, built from `plugins/` by `build.rs`.

macro_rules! builtin {
    ($name:literal, $file:literal) => {
        (
            $name,
            include_bytes!(concat!(env!("HOOKFLOW_PLUGIN_WASM_DIR"), "/", $file)),
        )
    };
}

/// `(name, component bytes)` of every built-in plugin.
pub const BUILTIN_PLUGINS: &[(&str, &[u8])] = &[
    builtin!("log", "log_plugin.wasm"),
    builtin!("transform", "transform_plugin.wasm"),
    builtin!("http-request", "http_request_plugin.wasm"),
    builtin!("slack", "slack_plugin.wasm"),
    builtin!("teams", "teams_plugin.wasm"),
    builtin!("splunk-hec", "splunk_hec_plugin.wasm"),
    builtin!("datadog-logs", "datadog_logs_plugin.wasm"),
    builtin!("loki", "loki_plugin.wasm"),
    builtin!("filter", "filter_plugin.wasm"),
    builtin!("email", "email_plugin.wasm"),
    builtin!("respond", "respond_plugin.wasm"),
    builtin!("first-seen", "first_seen_plugin.wasm"),
    builtin!("javascript", "javascript_plugin.wasm"),
];

/// Path of the test-only `hostile` plugin (infinite loop, unbounded allocation, traps), which
/// tests install to prove the sandbox holds. Not registered by default.
pub const HOSTILE_PLUGIN_PATH: &str =
    concat!(env!("HOOKFLOW_PLUGIN_WASM_DIR"), "/hostile_plugin.wasm");

/// Path of the test-only `effect` plugin, which declares side effects (test runs skip it).
pub const EFFECT_PLUGIN_PATH: &str =
    concat!(env!("HOOKFLOW_PLUGIN_WASM_DIR"), "/effect_plugin.wasm");

/// Path of the test-only `sneaky` plugin, which imports `wasi:sockets` (installing it must fail).
pub const SNEAKY_PLUGIN_PATH: &str =
    concat!(env!("HOOKFLOW_PLUGIN_WASM_DIR"), "/sneaky_plugin.wasm");

/// Path of the test-only `sleepy` plugin, whose `describe()` never answers.
pub const SLEEPY_PLUGIN_PATH: &str =
    concat!(env!("HOOKFLOW_PLUGIN_WASM_DIR"), "/sleepy_plugin.wasm");

/// Paths of the test-only `greet` plugin at versions 1.0.0 and 2.0.0, which tests install side
/// by side to show that flows keep the version they pin.
pub const GREET_PLUGIN_PATHS: [&str; 2] = [
    concat!(env!("HOOKFLOW_PLUGIN_WASM_DIR"), "/greet_v1_plugin.wasm"),
    concat!(env!("HOOKFLOW_PLUGIN_WASM_DIR"), "/greet_v2_plugin.wasm"),
];
