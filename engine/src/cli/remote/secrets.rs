//! `hookflow secret set|list|delete`: a project's write-only secrets. The value is read from
//! stdin (or typed at a prompt without echo), never from the command line, where it would sit
//! in the shell history and in every `ps` listing; nothing here ever prints it.

use super::{Body, Connect, encode, print_json, text};
use crate::cli::table::Table;
use crate::cli::{Failure, usage};
use reqwest::Method;
use serde_json::json;
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Set a secret; the value is read from stdin (one trailing newline is dropped), or
    /// prompted for without echo on a terminal.
    Set {
        /// The secret's name, as steps grant it (`secrets: [NAME]`).
        name: String,
        /// The project (default: the token's own project).
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// List secret names (values are never shown).
    List {
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Delete a secret.
    Delete {
        name: String,
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
}

fn path(name: Option<&str>, project: &Option<String>) -> String {
    let mut path = "/v1/secrets".to_string();
    if let Some(name) = name {
        path.push('/');
        path.push_str(&encode(name));
    }
    if let Some(project) = project {
        path.push_str(&format!("?projectId={}", encode(project)));
    }
    path
}

pub async fn run(command: SecretCommand) -> Result<ExitCode, Failure> {
    match command {
        SecretCommand::Set {
            name,
            project,
            connect,
        } => {
            let remote = connect.remote()?;
            let value = read_value(&name)?;
            let body = json!({ "value": value });
            let (status, answer) = remote
                .send(Method::PUT, &path(Some(&name), &project), Body::Json(&body))
                .await?;
            drop(body);
            if !(200..300).contains(&status) {
                // The server's problem names the field at fault and never echoes the value.
                let problem = serde_json::from_slice(&answer).ok();
                return Err(super::refusal(status, problem.as_ref()));
            }
            let created = status == 201;
            if connect.json {
                print_json(&json!({"name": name, "created": created}));
            } else {
                println!(
                    "{} secret {name}",
                    if created { "created" } else { "updated" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SecretCommand::List { project, connect } => {
            let remote = connect.remote()?;
            let page = remote.get(&path(None, &project)).await?;
            if connect.json {
                print_json(&page["data"]);
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&["NAME", "CREATED", "UPDATED"]);
            for s in page["data"].as_array().into_iter().flatten() {
                table.row([text(&s["name"]), text(&s["created"]), text(&s["updated"])]);
            }
            if table.is_empty() {
                println!("no secrets");
            } else {
                table.print();
            }
            Ok(ExitCode::SUCCESS)
        }
        SecretCommand::Delete {
            name,
            project,
            connect,
        } => {
            let remote = connect.remote()?;
            remote
                .call(Method::DELETE, &path(Some(&name), &project), Body::None)
                .await?;
            if connect.json {
                print_json(&json!({"name": name, "deleted": true}));
            } else {
                println!("deleted secret {name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The value: all of stdin when it is not a terminal (one trailing newline dropped, as `echo`
/// and here-strings add one), else typed at a prompt with echo off.
fn read_value(name: &str) -> Result<String, Failure> {
    let stdin = std::io::stdin();
    let mut value = String::new();
    if stdin.is_terminal() {
        eprint!("value of {name}: ");
        let _ = std::io::stderr().flush();
        let echo = |on: bool| {
            let _ = std::process::Command::new("stty")
                .arg(if on { "echo" } else { "-echo" })
                .stdin(std::process::Stdio::inherit())
                .status();
        };
        echo(false);
        let read = std::io::BufRead::read_line(&mut stdin.lock(), &mut value);
        echo(true);
        eprintln!();
        read.map_err(|e| usage(format!("cannot read the value: {e}")))?;
    } else {
        stdin
            .lock()
            .read_to_string(&mut value)
            .map_err(|e| usage(format!("cannot read the value from stdin: {e}")))?;
    }
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(usage(format!(
            "no value for secret {name}: pipe it on stdin (e.g. `printf %s \"$VALUE\" | hookflow secret set {name}`)"
        )));
    }
    Ok(value)
}
