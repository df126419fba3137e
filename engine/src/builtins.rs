//! The plugins that ship inside the binary, built from `plugins/` by `build.rs`.

/// `(file name, component bytes)` of every built-in plugin.
pub const BUILTIN_PLUGINS: &[(&str, &[u8])] = &[
    (
        "log",
        include_bytes!(concat!(
            env!("HOOKFLOW_PLUGIN_WASM_DIR"),
            "/log_plugin.wasm"
        )),
    ),
    (
        "transform",
        include_bytes!(concat!(
            env!("HOOKFLOW_PLUGIN_WASM_DIR"),
            "/transform_plugin.wasm"
        )),
    ),
];

/// Path of the test-only `hostile` plugin (infinite loop, unbounded allocation, traps), which
/// tests install to prove the sandbox holds. Not registered by default.
pub const HOSTILE_PLUGIN_PATH: &str =
    concat!(env!("HOOKFLOW_PLUGIN_WASM_DIR"), "/hostile_plugin.wasm");

/// Path of the test-only `effect` plugin, which declares side effects (test runs skip it).
pub const EFFECT_PLUGIN_PATH: &str =
    concat!(env!("HOOKFLOW_PLUGIN_WASM_DIR"), "/effect_plugin.wasm");
