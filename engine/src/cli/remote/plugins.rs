//! `hookflow plugin list|install|show|remove`: the plugins a server runs.

use super::{Body, Connect, encode, print_json, text};
use crate::cli::progress::{Progress, Unit};
use crate::cli::table::Table;
use crate::cli::{Failure, usage};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum PluginRemoteCommand {
    /// Install a component on a running server (no restart needed).
    Install {
        /// The `.wasm` component.
        file: PathBuf,
        /// No upload progress on standard error.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        connect: Connect,
    },
    /// Remove an installed plugin version that no flow's published version or draft uses
    /// (older versions in flows' histories do not count).
    Remove {
        /// NAME@VERSION.
        plugin: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// List the plugins a running server has.
    List {
        #[command(flatten)]
        connect: Connect,
    },
    /// Show a plugin: description, side effects, digest and inputs.
    Show {
        /// NAME or NAME@VERSION (every installed version of NAME without one).
        plugin: String,
        #[command(flatten)]
        connect: Connect,
    },
}

pub async fn run(command: PluginRemoteCommand) -> Result<ExitCode, Failure> {
    match command {
        PluginRemoteCommand::Install {
            file,
            quiet,
            connect,
        } => {
            let wasm = std::fs::read(&file)
                .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
            let remote = connect.remote()?;
            let progress = Progress::new(
                &format!("uploading {}", file.display()),
                Unit::Bytes,
                Some(wasm.len() as u64),
                LARGE_COMPONENT,
                quiet,
            );
            let info = remote
                .call(
                    Method::POST,
                    "/v1/plugins",
                    Body::Upload("application/wasm", wasm, progress),
                )
                .await?;
            if connect.json {
                print_json(&info);
            } else {
                println!(
                    "installed {}@{} ({})",
                    text(&info["name"]),
                    text(&info["version"]),
                    text(&info["description"])
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginRemoteCommand::List { connect } => {
            let remote = connect.remote()?;
            let page = remote.get("/v1/plugins").await?;
            if connect.json {
                print_json(&page["data"]);
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&["PLUGIN", "KIND", "SIDE EFFECTS", "DESCRIPTION"]);
            for p in page["data"].as_array().into_iter().flatten() {
                table.row([
                    format!("{}@{}", text(&p["name"]), text(&p["version"])),
                    kind(p).into(),
                    yes_no(&p["sideEffects"]).into(),
                    text(&p["description"]),
                ]);
            }
            table.print();
            Ok(ExitCode::SUCCESS)
        }
        PluginRemoteCommand::Remove { plugin, connect } => {
            let Some((name, version)) = plugin.split_once('@') else {
                return Err(usage(format!(
                    "{plugin}: give NAME@VERSION (versions are removed one at a time)"
                )));
            };
            let remote = connect.remote()?;
            remote
                .call(
                    Method::DELETE,
                    &format!("/v1/plugins/{}/{}", encode(name), encode(version)),
                    Body::None,
                )
                .await?;
            if connect.json {
                print_json(&json!({"name": name, "version": version, "removed": true}));
            } else {
                println!("removed {name}@{version}");
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginRemoteCommand::Show { plugin, connect } => {
            let (name, version) = match plugin.split_once('@') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (plugin.clone(), None),
            };
            let remote = connect.remote()?;
            let page = remote.get("/v1/plugins").await?;
            let found: Vec<&Value> = page["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["name"].as_str() == Some(name.as_str()))
                .filter(|p| version.is_none() || p["version"].as_str() == version.as_deref())
                .collect();
            if found.is_empty() {
                return Err(usage(format!(
                    "plugin {plugin} is not installed on {}",
                    remote.base()
                )));
            }
            if connect.json {
                print_json(&if version.is_some() {
                    found[0].clone()
                } else {
                    json!(found)
                });
                return Ok(ExitCode::SUCCESS);
            }
            for (i, p) in found.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                println!("plugin:       {}@{}", text(&p["name"]), text(&p["version"]));
                println!("description:  {}", text(&p["description"]));
                println!("kind:         {}", kind(p));
                println!("side effects: {}", yes_no(&p["sideEffects"]));
                println!("digest:       {}", text(&p["digest"]));
                let schema = &p["inputSchema"];
                let required: Vec<&str> = schema["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let mut table = Table::new(&["INPUT", "TYPE", "REQUIRED", "DESCRIPTION"]);
                for (key, field) in schema["properties"].as_object().into_iter().flatten() {
                    table.row([
                        key.clone(),
                        text(&field["type"]),
                        if required.contains(&key.as_str()) {
                            "yes"
                        } else {
                            "no"
                        }
                        .into(),
                        text(&field["description"]),
                    ]);
                }
                if !table.is_empty() {
                    println!();
                    table.print();
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Off a terminal, only components at least this big show upload progress.
const LARGE_COMPONENT: u64 = 4 << 20;

fn kind(p: &Value) -> &'static str {
    if p["builtin"] == true {
        "built-in"
    } else {
        "installed"
    }
}

fn yes_no(v: &Value) -> &'static str {
    if v == true { "yes" } else { "no" }
}
