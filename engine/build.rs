//! Builds the built-in plugins (`plugins/`, target `wasm32-wasip2`) so that `cargo build` of the
//! engine is the only step needed: the components are embedded into the binary. Set
//! `HOOKFLOW_PLUGIN_WASM_DIR` to a directory of prebuilt components to skip this.

use std::path::PathBuf;
use std::process::Command;

const PLUGINS: &[&str] = &[
    "log_plugin",
    "transform_plugin",
    "http_request_plugin",
    "slack_plugin",
    "teams_plugin",
    "splunk_hec_plugin",
    "datadog_logs_plugin",
    "loki_plugin",
    "filter_plugin",
    "email_plugin",
    "respond_plugin",
    "first_seen_plugin",
    "javascript_plugin",
    "greet_v1_plugin",
    "greet_v2_plugin",
    "hostile_plugin",
    "effect_plugin",
    "sneaky_plugin",
    "sleepy_plugin",
];

fn main() {
    // `sqlx::migrate!` embeds the migration files; a new file must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=HOOKFLOW_PLUGIN_WASM_DIR");
    if let Ok(dir) = std::env::var("HOOKFLOW_PLUGIN_WASM_DIR") {
        println!("cargo:rustc-env=HOOKFLOW_PLUGIN_WASM_DIR={dir}");
        return;
    }
    // Without the `runtime` feature (the fuzz build) no module embeds the plugins.
    if std::env::var_os("CARGO_FEATURE_RUNTIME").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let plugins = root.join("plugins");
    for watched in ["wit", "plugins/Cargo.toml", "plugins/Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    // Every plugin crate's directory: not `plugins/target`, which this build writes, nor
    // `plugins/python`, which is not part of the cargo workspace (and holds a virtualenv).
    for entry in std::fs::read_dir(&plugins)
        .expect("read plugins/")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir()
            && path
                .file_name()
                .is_some_and(|n| n != "target" && n != "python")
        {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--locked",
        ])
        .env("CARGO_TARGET_DIR", plugins.join("target"));
    // Settings meant for the host build must not leak into the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
        {
            command.env_remove(key);
        }
    }
    let status = command
        .status()
        .expect("could not run cargo to build the plugins");
    if !status.success() {
        panic!(
            "building the built-in plugins failed (see above). They need the wasm32-wasip2 target: \
             run `rustup target add wasm32-wasip2`"
        );
    }
    let out = plugins.join("target/wasm32-wasip2/release");
    for name in PLUGINS {
        let file = out.join(format!("{name}.wasm"));
        assert!(
            file.exists(),
            "plugin build did not produce {}",
            file.display()
        );
    }
    println!("cargo:rustc-env=HOOKFLOW_PLUGIN_WASM_DIR={}", out.display());
}
