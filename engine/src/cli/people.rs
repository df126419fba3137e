//! `hookflow user|project|api-key ...`: people, projects, memberships, invitations and API keys,
//! through a running server's API (so every change is checked and audited like any other).
//! Passwords are read from stdin or a prompt without echo, never from the command line.

use super::{Failure, ServerArgs, remote, usage};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create a person. The password is read from stdin (or prompted for, twice).
    Create {
        #[arg(long)]
        email: String,
        /// platform-admin or auditor (platform-wide), or admin, editor, operator, viewer
        /// (with --project).
        #[arg(long)]
        role: Option<String>,
        /// The project a project role is granted in.
        #[arg(long)]
        project: Option<String>,
        /// Display name (default: the part of the email before '@').
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List people.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Disable a person: they cannot sign in, and their sessions end at once.
    Disable {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Enable a disabled person again.
    Enable {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ProjectCommand {
    /// Create a project.
    Create {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the projects you can see.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Give a person (by email) a role in a project, or change it.
    AddMember {
        project: String,
        #[arg(long)]
        email: String,
        /// admin, editor, operator or viewer.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove a person from a project.
    RemoveMember {
        project: String,
        user_id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List a project's members.
    Members {
        project: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Invite someone without an account: prints a one-time token for
    /// `POST /v1/auth/accept-invitation`.
    Invite {
        project: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; it is printed once and never shown again.
    Create {
        #[arg(long)]
        name: String,
        /// For a project key: admin, editor, operator, viewer. Platform-wide: platform-admin,
        /// auditor.
        #[arg(long)]
        role: String,
        /// The project; without it the key is platform-wide.
        #[arg(long)]
        project: Option<String>,
        /// RFC 3339 expiry, e.g. 2027-01-01T00:00:00Z.
        #[arg(long)]
        expires_at: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List keys (prefixes only).
    List {
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a key at once, for every process.
    Revoke {
        id: String,
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Calls the API through the CLI's one server client: a 4xx is the user's to fix (exit 2, the
/// server's detail), an unreachable server or a 5xx is ours (exit 1).
async fn call(
    server: &ServerArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, Failure> {
    let body = body.map_or(remote::Body::None, remote::Body::Json);
    server.remote()?.call(method, path, body).await
}

/// Reads a password: the first line of stdin when it is not a terminal, else a prompt with
/// echo off, asked twice.
fn read_password() -> Result<String, Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| usage(format!("cannot read the password from stdin: {e}")))?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            return Err(usage("no password on stdin"));
        }
        return Ok(password);
    }
    let first = prompt("Password: ")?;
    let second = prompt("Again: ")?;
    if first != second {
        return Err(usage("the passwords differ"));
    }
    Ok(first)
}

fn prompt(text: &str) -> Result<String, Failure> {
    let echo = |on: bool| {
        let _ = std::process::Command::new("stty")
            .arg(if on { "echo" } else { "-echo" })
            .stdin(std::process::Stdio::inherit())
            .status();
    };
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    echo(false);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    echo(true);
    eprintln!();
    read.map_err(|e| usage(format!("cannot read the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn print_list(body: &Value, line: impl Fn(&Value) -> String) {
    for item in body["data"].as_array().into_iter().flatten() {
        println!("{}", line(item));
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn is_platform_role(role: &str) -> bool {
    matches!(role, "platform-admin" | "auditor")
}

pub async fn user(command: UserCommand) -> Result<ExitCode, Failure> {
    match command {
        UserCommand::Create {
            email,
            role,
            project,
            name,
            server,
        } => {
            let mut body = json!({"email": email, "name": name});
            match (role.as_deref(), project) {
                (Some(r), None) if is_platform_role(r) => body["platformRole"] = json!(r),
                (Some(r), None) => {
                    return Err(usage(format!(
                        "--role {r} is a project role: give --project too"
                    )));
                }
                (Some(r), Some(p)) => {
                    body["projectId"] = json!(p);
                    body["role"] = json!(r);
                }
                (None, Some(_)) => return Err(usage("--project needs --role")),
                (None, None) => {}
            }
            body["password"] = json!(read_password()?);
            let user = call(&server, Method::POST, "/v1/users", Some(&body)).await?;
            println!(
                "created user {} ({})",
                text(&user["id"]),
                text(&user["email"])
            );
        }
        UserCommand::List { server } => {
            let users = call(&server, Method::GET, "/v1/users", None).await?;
            print_list(&users, |u| {
                format!(
                    "{}  {}  {}  {}{}",
                    text(&u["id"]),
                    text(&u["email"]),
                    text(&u["name"]),
                    u["platformRole"].as_str().unwrap_or("member"),
                    if u["disabled"] == true {
                        "  (disabled)"
                    } else {
                        ""
                    }
                )
            });
        }
        UserCommand::Disable { id, server } => set_disabled(&server, &id, true).await?,
        UserCommand::Enable { id, server } => set_disabled(&server, &id, false).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_disabled(server: &ServerArgs, id: &str, disabled: bool) -> Result<(), Failure> {
    let body = json!({"disabled": disabled});
    call(
        server,
        Method::PATCH,
        &format!("/v1/users/{id}"),
        Some(&body),
    )
    .await?;
    println!(
        "user {id} {}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

pub async fn project(command: ProjectCommand) -> Result<ExitCode, Failure> {
    match command {
        ProjectCommand::Create { name, server } => {
            let body = json!({"name": name});
            let p = call(&server, Method::POST, "/v1/projects", Some(&body)).await?;
            println!("created project {} ({})", text(&p["id"]), text(&p["name"]));
        }
        ProjectCommand::List { server } => {
            let list = call(&server, Method::GET, "/v1/projects", None).await?;
            print_list(&list, |p| {
                format!(
                    "{}  {}  {}",
                    text(&p["id"]),
                    text(&p["name"]),
                    text(&p["role"])
                )
            });
        }
        ProjectCommand::AddMember {
            project,
            email,
            role,
            server,
        } => {
            let body = json!({"email": email, "role": role});
            let path = format!("/v1/projects/{project}/members");
            call(&server, Method::POST, &path, Some(&body)).await?;
            println!("{email} is {role} in project {project}");
        }
        ProjectCommand::RemoveMember {
            project,
            user_id,
            server,
        } => {
            let path = format!("/v1/projects/{project}/members/{user_id}");
            call(&server, Method::DELETE, &path, None).await?;
            println!("removed {user_id} from project {project}");
        }
        ProjectCommand::Members { project, server } => {
            let path = format!("/v1/projects/{project}/members");
            let list = call(&server, Method::GET, &path, None).await?;
            print_list(&list, |m| {
                format!(
                    "{}  {}  {}",
                    text(&m["userId"]),
                    text(&m["email"]),
                    text(&m["role"])
                )
            });
        }
        ProjectCommand::Invite {
            project,
            email,
            role,
            server,
        } => {
            let body = json!({"email": email, "role": role});
            let path = format!("/v1/projects/{project}/invitations");
            let invitation = call(&server, Method::POST, &path, Some(&body)).await?;
            println!(
                "invitation for {email} ({role}), valid until {}; hand over this one-time token:",
                text(&invitation["expiresAt"])
            );
            println!("{}", text(&invitation["token"]));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn keys_path(project: &Option<String>) -> String {
    match project {
        Some(p) => format!("/v1/projects/{p}/api-keys"),
        None => "/v1/platform/api-keys".into(),
    }
}

pub async fn api_key(command: ApiKeyCommand) -> Result<ExitCode, Failure> {
    match command {
        ApiKeyCommand::Create {
            name,
            role,
            project,
            expires_at,
            server,
        } => {
            let body = json!({"name": name, "role": role, "expiresAt": expires_at});
            let key = call(&server, Method::POST, &keys_path(&project), Some(&body)).await?;
            eprintln!(
                "created API key {} ({role}); it is shown only now:",
                text(&key["id"])
            );
            println!("{}", text(&key["key"]));
        }
        ApiKeyCommand::List { project, server } => {
            let list = call(&server, Method::GET, &keys_path(&project), None).await?;
            print_list(&list, |k| {
                format!(
                    "{}  {}…  {}  {}  last used {}{}",
                    text(&k["id"]),
                    text(&k["prefix"]),
                    text(&k["name"]),
                    text(&k["role"]),
                    k["lastUsedAt"].as_str().unwrap_or("never"),
                    if k["revokedAt"].is_string() {
                        "  (revoked)"
                    } else {
                        ""
                    }
                )
            });
        }
        ApiKeyCommand::Revoke {
            id,
            project,
            server,
        } => {
            let path = format!("{}/{id}", keys_path(&project));
            call(&server, Method::DELETE, &path, None).await?;
            println!("revoked API key {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
