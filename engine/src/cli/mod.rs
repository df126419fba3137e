//! The `hookflow` command line. `main.rs` only calls [`main`]. Usage errors and bad input exit
//! with code 2 and one line saying what is wrong; a flow run that fails exits with 1.

mod local_run;
mod people;
mod progress;
mod remote;
mod replay;
mod scaffold;
mod table;
mod trace;

use crate::config::ServeConfig;
use crate::exec::RunResult;
use crate::exec::{Executor, RunRequest};
use crate::flow::{self, Format};
use crate::registry::plugin_problems;
use crate::server;
use crate::store::{Environment, RunStatus, StepRecord};
use crate::testrun::{self, TestInput};
use clap::{Parser, Subcommand};
use local_run::LocalRun;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "hookflow",
    version,
    about = "WebAssembly-extensible workflow engine for audit events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process; boxing the big `serve` settings would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server (webhook intake, workers and API).
    Serve(ServeConfig),
    /// Flows: check and run files locally; deploy, list, show, export, diff and delete them on
    /// a server.
    #[command(subcommand)]
    Flow(FlowCommand),
    /// Write plugins; list, install, show and remove them on a server.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Inspect the engine's audit log: through a server with --url (or HOOKFLOW_URL), else by
    /// reading the database directly.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Runs on a server: list (--follow for new ones), show, retry.
    #[command(subcommand)]
    Run(remote::runs::RunCommand),
    /// A project's secrets on a server (values from stdin, never shown).
    #[command(subcommand)]
    Secret(remote::secrets::SecretCommand),
    /// Where a server streams its audit events.
    #[command(subcommand)]
    Destination(remote::destinations::DestinationCommand),
    /// People: create the first platform admin, list, disable (via the server's API).
    #[command(subcommand)]
    User(people::UserCommand),
    /// Projects, their members and invitations (via the server's API).
    #[command(subcommand)]
    Project(people::ProjectCommand),
    /// API keys for a project or the whole platform (via the server's API).
    #[command(subcommand)]
    ApiKey(people::ApiKeyCommand),
    /// Generate a handler flow for selected audit event types (prints YAML).
    Generate {
        /// Comma-separated event types, e.g. flow.run.finished,user.signed.in
        #[arg(
            long,
            value_delimiter = ',',
            required_unless_present = "template",
            conflicts_with = "template"
        )]
        events: Vec<String>,
        /// A ready-made handler instead: failed-runs-to-slack, admin-role-changes-to-teams,
        /// everything-to-splunk.
        #[arg(long)]
        template: Option<String>,
        /// Event source: activepieces, gitlab, auth0 (Event Streams) or auth0-logs (Log Streams).
        #[arg(long, default_value = "activepieces")]
        source: String,
        /// Flow name.
        #[arg(long)]
        name: Option<String>,
        /// Write the flow to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Scaffold a buildable plugin project (Rust, wasm32-wasip2) with a flow to try it.
    New {
        /// Plugin name: lower-case letters, digits and '-'.
        name: String,
        /// Directory to create. Default: ./NAME
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Use the plugin SDK crate at this path (a hookflow checkout's `plugins/sdk`) instead of
        /// writing a copy into the project's `sdk/` (the default: the project builds on its own).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    #[command(flatten)]
    Remote(remote::plugins::PluginRemoteCommand),
}

/// Which server to talk to.
#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// Server URL (http:// or https://).
    #[arg(
        long = "url",
        visible_alias = "server",
        env = "HOOKFLOW_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// API key or admin token. Default: HOOKFLOW_TOKEN, HOOKFLOW_ADMIN_TOKEN, else the admin
    /// token the server generated in the data directory (`HOOKFLOW_DATA_DIR`, `./hookflow-data`).
    #[arg(long, hide_env_values = true)]
    token: Option<String>,
}

impl ServerArgs {
    fn remote(&self) -> Result<remote::Remote, Failure> {
        remote::Remote::new(&self.server, self.token.as_deref())
    }
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Write audit events (newest first) as JSONL or CSV.
    Export {
        #[command(flatten)]
        db: DatabaseArgs,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: crate::audit::ExportFormat,
        /// Only these actions (repeatable).
        #[arg(long)]
        action: Vec<String>,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// No progress on standard error.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check the keyed hash chain, the head and retention checkpoints; name every problem.
    Verify {
        #[command(flatten)]
        db: DatabaseArgs,
        /// A head kept elsewhere (`SEQ:HASH` or `SEQ:HASH:SIG`, as `audit head` prints it):
        /// proves nothing up to it was removed or changed.
        #[arg(long, value_parser = |s: &str| s.parse::<crate::audit::ExternalHead>())]
        head: Option<crate::audit::ExternalHead>,
    },
    /// Print the chain head signed with the audit key (`SEQ:HASH:SIG`), to keep elsewhere.
    Head(DatabaseArgs),
    /// Print the newest audit events as a table.
    List {
        #[command(flatten)]
        db: DatabaseArgs,
        /// How many events.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only these actions (repeatable).
        #[arg(long)]
        action: Vec<String>,
    },
}

/// Which database to read.
#[derive(Debug, clap::Args)]
struct DatabaseArgs {
    /// Database URL (`sqlite://PATH` or `postgres://...`). Default: the SQLite file in the
    /// data directory.
    #[arg(long, env = "HOOKFLOW_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// The server's data directory.
    #[arg(long, env = "HOOKFLOW_DATA_DIR", default_value = "hookflow-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    server: remote::audit::AuditServer,
}

impl DatabaseArgs {
    /// The audit key from `HOOKFLOW_SECRET_KEY` or the data directory's `secret.key`.
    fn audit_key(&self) -> Result<crate::store::audit::AuditKey, Failure> {
        let configured = std::env::var("HOOKFLOW_SECRET_KEY").ok();
        crate::audit::load_key(configured.as_deref(), &self.data_dir).map_err(usage)
    }

    /// Opens the database read-only and without migrating: a server may be running on it.
    async fn open(&self) -> Result<crate::store::DynStore, Failure> {
        let text = self
            .database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("hookflow.db").display()));
        let url = crate::store::DatabaseUrl::parse(&text)
            .map_err(|e| usage(format!("--database: {e}")))?;
        crate::store::open_read_only(&url)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound(what) => {
                    usage(format!("no {what} (use --data-dir or --database)"))
                }
                crate::store::StoreError::Unavailable(why) => usage(why),
                other => Failure::Internal(other.into()),
            })
    }
}

#[derive(Debug, Subcommand)]
enum FlowCommand {
    /// Check a flow file (JSON or YAML; `-` for stdin) and list every problem by path.
    Validate {
        /// The flow file.
        file: PathBuf,
        /// Plugin components (not installed anywhere) the flow may use besides the built-ins.
        #[arg(long = "plugin")]
        plugins: Vec<PathBuf>,
    },
    /// Run a flow locally against an event, without a server, and print the trace.
    Run {
        /// The flow file.
        file: PathBuf,
        /// The event body (JSON file, `-` for stdin) the webhook would receive.
        #[arg(long)]
        payload: PathBuf,
        /// A request header the webhook would receive, `NAME:VALUE` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// A secret granted steps may read, `NAME=VALUE` (repeatable).
        #[arg(long = "secret")]
        secrets: Vec<String>,
        /// A file of secrets, one `NAME=VALUE` per line (`#` comments and blank lines skipped).
        #[arg(long)]
        secrets_file: Option<PathBuf>,
        /// Extra plugin components to load besides the built-ins.
        #[arg(long = "plugin")]
        plugins: Vec<PathBuf>,
        /// Print the run as JSON instead of a tree.
        #[arg(long)]
        json: bool,
    },
    /// Test-run a flow against a sample event: a flow FILE locally, or a flow ID on a server.
    Test {
        /// A flow file, or the id of a flow on the server.
        flow: String,
        /// Event type whose sample to use (the flow's sampleData, else the catalog's).
        #[arg(long, conflicts_with = "payload")]
        event: Option<String>,
        /// An event body (JSON file) instead of a sample.
        #[arg(long)]
        payload: Option<PathBuf>,
        /// Also run steps whose plugin has side effects.
        #[arg(long)]
        live: bool,
        /// A flow on a server: run its pending draft instead of the published version.
        #[arg(long, conflicts_with = "flow_version")]
        draft: bool,
        /// A flow on a server: run this saved version instead of the published one.
        #[arg(long)]
        flow_version: Option<i64>,
        /// Server for flow ids.
        #[arg(
            long = "url",
            visible_alias = "server",
            env = "HOOKFLOW_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        server: String,
        /// API key or admin token for flow ids. Default: HOOKFLOW_TOKEN, HOOKFLOW_ADMIN_TOKEN,
        /// else the admin token the server wrote into its data directory.
        #[arg(long, hide_env_values = true)]
        token: Option<String>,
        /// Print the run as JSON instead of a tree.
        #[arg(long)]
        json: bool,
    },
    /// Run a flow over past events (JSON Lines, in event-time order) and report what its
    /// threshold steps would have fired; side effects are skipped and nothing is kept.
    Replay {
        /// A flow file, or the id of a flow on the server (its definition is replayed here).
        flow: String,
        /// JSON Lines file of event bodies (`-` for standard input); a line holding an array
        /// counts each element.
        #[arg(long)]
        events: PathBuf,
        /// Extra plugin components to load besides the built-ins.
        #[arg(long = "plugin")]
        plugins: Vec<PathBuf>,
        /// The server a flow id is read from.
        #[command(flatten)]
        server: ServerArgs,
        /// Print `{"events": N, "alerts": [...]}` as JSON.
        #[arg(long)]
        json: bool,
        /// No progress on standard error.
        #[arg(long, short)]
        quiet: bool,
    },
    #[command(flatten)]
    Remote(remote::flows::FlowRemoteCommand),
}

/// A failure the user can fix: printed as one line, exit code 2.
struct UsageError(String);

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return clap_exit(&error),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(Failure::Usage(UsageError(message))) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Internal(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// clap's own outcomes: help and version print as clap prints them; a usage error (an
/// unknown flag, a missing argument, `--workers abc`) is the one line that says what is
/// wrong, exit code 2, like every other usage error here — not clap's usage block and tips.
fn clap_exit(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(if error.use_stderr() { 2 } else { 0 })
        }
        _ => {
            eprintln!("{}", clap_error_line(&error.render().to_string()));
            ExitCode::from(2)
        }
    }
}

/// The first paragraph of a clap message on one line: a message that lists what is missing
/// on the lines after its colon keeps the list.
fn clap_error_line(rendered: &str) -> String {
    let line = rendered
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if line.is_empty() {
        "error: invalid arguments (see --help)".to_string()
    } else {
        line
    }
}

enum Failure {
    Usage(UsageError),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Internal(e)
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(UsageError(message.into()))
}

async fn dispatch(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Serve(config) => serve(config).await,
        Command::Flow(FlowCommand::Validate { file, plugins }) => validate(&file, &plugins).await,
        Command::Flow(FlowCommand::Run {
            file,
            payload,
            headers,
            secrets,
            secrets_file,
            plugins,
            json,
        }) => {
            let local = LocalRun {
                headers,
                secrets,
                secrets_file,
            };
            run_local(&file, &payload, &local, &plugins, json).await
        }
        Command::Flow(FlowCommand::Remote(command)) => remote::flows::run(command).await,
        Command::Run(command) => remote::runs::run(command).await,
        Command::Secret(command) => remote::secrets::run(command).await,
        Command::Destination(command) => remote::destinations::run(command).await,
        Command::Flow(FlowCommand::Test {
            flow,
            event,
            payload,
            live,
            draft,
            flow_version,
            server,
            token,
            json,
        }) => {
            let version = match (draft, flow_version) {
                (true, _) => Some(json!("draft")),
                (false, Some(n)) => Some(json!(n)),
                (false, None) => None,
            };
            let input = match (event, payload) {
                (Some(event), None) => TestInput::Event(event),
                (None, Some(path)) => TestInput::Payload(
                    serde_json::from_str(&read_file(&path)?)
                        .map_err(|e| usage(format!("{} is not valid JSON: {e}", path.display())))?,
                ),
                _ => return Err(usage("give --event TYPE or --payload FILE")),
            };
            let target = TestTarget {
                flow: &flow,
                version,
                server: &server,
                token: token.as_deref(),
            };
            test_flow(target, input, live, json).await
        }
        Command::Flow(FlowCommand::Replay {
            flow,
            events,
            plugins,
            server,
            json,
            quiet,
        }) => {
            replay::replay_command(replay::ReplayArgs {
                flow,
                events,
                plugins,
                server,
                json,
                quiet,
            })
            .await
        }
        Command::User(command) => people::user(command).await,
        Command::Project(command) => people::project(command).await,
        Command::ApiKey(command) => people::api_key(command).await,
        Command::Plugin(PluginCommand::New { name, dir, sdk }) => {
            scaffold_plugin(&name, dir, sdk.as_deref())
        }
        Command::Plugin(PluginCommand::Remote(command)) => remote::plugins::run(command).await,
        Command::Audit(AuditCommand::Export {
            db,
            format,
            action,
            output,
            quiet,
        }) => {
            use std::io::Write;
            let mut progress = remote::audit::export_progress(quiet);
            if let Some(remote) = db.server.remote()? {
                let format = match format {
                    crate::audit::ExportFormat::Csv => "csv",
                    crate::audit::ExportFormat::Jsonl => "jsonl",
                };
                let to = output.as_deref();
                return remote::audit::export(&remote, format, &action, to, progress).await;
            }
            let store = db.open().await?;
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    std::fs::File::create(path)
                        .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let io = |e: std::io::Error| Failure::Internal(e.into());
            out.write_all(format.header().as_bytes()).map_err(io)?;
            let mut filter = crate::store::AuditFilter {
                limit: 500,
                actions: action,
                ..Default::default()
            };
            let mut count = 0;
            loop {
                let page = store
                    .list_audit(&filter)
                    .await
                    .map_err(|e| Failure::Internal(e.into()))?;
                for event in page.data {
                    out.write_all(format.line(&crate::audit::with_summary(event)).as_bytes())
                        .map_err(io)?;
                    count += 1;
                }
                progress.show(count, String::new);
                match page.next.as_deref().and_then(crate::store::Cursor::decode) {
                    Some(next) => filter.cursor = Some(next),
                    None => break,
                }
            }
            out.flush().map_err(io)?;
            progress.finish(count, String::new);
            if output.is_some() {
                eprintln!("exported {count} events");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Verify { db, head }) => {
            if let Some(remote) = db.server.remote()? {
                let head = head.map(|h| match h.sig {
                    Some(sig) => format!("{}:{}:{sig}", h.seq, h.hash),
                    None => format!("{}:{}", h.seq, h.hash),
                });
                return remote::audit::verify(&remote, head.as_deref(), db.server.json).await;
            }
            let key = db.audit_key()?;
            let store = db.open().await?;
            let report = crate::audit::verify(&store, &key, head.as_ref())
                .await
                .map_err(|e| Failure::Internal(e.into()))?;
            if db.server.json {
                remote::print_json(&json!(report));
            } else if report.intact {
                report.lines().iter().for_each(|l| println!("{l}"));
            } else {
                eprintln!("audit chain BROKEN:");
                report.lines().iter().for_each(|l| eprintln!("{l}"));
            }
            Ok(if report.intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Audit(AuditCommand::Head(db)) => {
            let key = db.audit_key()?;
            let store = db.open().await?;
            let head = store
                .audit_head()
                .await
                .map_err(|e| Failure::Internal(e.into()))?;
            let signed = crate::audit::sign_head(&key, &head);
            if db.server.json {
                remote::print_json(&signed);
            } else {
                println!("{}", signed["text"].as_str().unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::List { db, limit, action }) => {
            if let Some(remote) = db.server.remote()? {
                return remote::audit::list(&remote, limit, &action, db.server.json).await;
            }
            let store = db.open().await?;
            let filter = crate::store::AuditFilter {
                limit: limit.clamp(1, 500),
                actions: action,
                ..Default::default()
            };
            let page = store
                .list_audit(&filter)
                .await
                .map_err(|e| Failure::Internal(e.into()))?;
            let events: Vec<Value> = page
                .data
                .into_iter()
                .map(crate::audit::with_summary)
                .collect();
            if db.server.json {
                remote::print_json(&Value::Array(events));
            } else {
                remote::audit::print_events(&events);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate {
            events,
            template,
            source,
            name,
            output,
        } => generate_flow(events, template, source, name, output.as_deref()),
    }
}

async fn serve(config: ServeConfig) -> Result<ExitCode, Failure> {
    init_tracing()?;
    config.validate().map_err(usage)?;
    log_settings(&config);
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| usage(format!("cannot listen on {}: {e}", config.listen)))?;
    // One machine-readable line on stdout, once the server can serve (settings checked, store
    // open, plugins compiled): scripts and tests that pass port 0 read the address.
    server::run(listener, config, shutdown_signal(), |address| {
        use std::io::Write;
        println!("hookflow listening on http://{address}");
        let _ = std::io::stdout().flush();
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr: `HOOKFLOW_LOG` picks the level (`info`; any `EnvFilter` directive),
/// `HOOKFLOW_LOG_FORMAT` the shape (`text`, or `json` with one object per line for a log
/// shipper). Colour only when stderr is a terminal and `NO_COLOR` is unset, so files and
/// journald get plain text.
fn init_tracing() -> Result<(), Failure> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKFLOW_LOG")
        .unwrap_or_else(|_| "info".into());
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let format = std::env::var("HOOKFLOW_LOG_FORMAT").unwrap_or_default();
    let _ = match format.to_ascii_lowercase().as_str() {
        "" | "text" => builder.try_init(),
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        _ => {
            return Err(usage(format!(
                "HOOKFLOW_LOG_FORMAT must be text or json, got {format:?}"
            )));
        }
    };
    Ok(())
}

/// One line per setting an operator needs to know at start (never a secret: the database URL
/// is redacted, credentials are only said to be set), and a loud warning for the development
/// switch that opens private addresses to plugins and destinations.
fn log_settings(config: &ServeConfig) {
    let archive = |dir: &Option<PathBuf>| {
        dir.as_ref()
            .map_or_else(|| "(not set)".to_string(), |d| d.display().to_string())
    };
    let database = config
        .database()
        .map(|url| url.redacted())
        .unwrap_or_else(|e| e);
    tracing::info!(listen = %config.listen, role = ?config.role, "hookflow starting");
    tracing::info!(%database, data_dir = %config.data_dir.display(), "storage");
    tracing::info!(
        workers = config.workers,
        step_memory_mb = config.step_memory_mb,
        max_body_bytes = config.max_body_bytes,
        "limits"
    );
    tracing::info!(
        public_url = config.public_url.as_deref().unwrap_or("(not set)"),
        trusted_proxies = config.trusted_proxies.len(),
        smtp = config.smtp_url.is_some(),
        audit_retention_days = config.audit_retention_days,
        audit_archive = %archive(&config.audit_archive_dir),
        run_retention_days = ?config.run_retention_days,
        run_retention_flows = config.run_retention_flow_days.len(),
        run_archive = %archive(&config.run_archive_dir),
        "settings"
    );
    if config.dev_allow_local_destinations {
        tracing::warn!(
            "--dev-allow-local-destinations ({}) is on: plugins and destinations may reach \
             loopback and private addresses over plain HTTP. Never use this in production.",
            crate::netguard::DEV_ALLOW_LOCAL_ENV
        );
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested");
}

fn read_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))
}

/// Parses a flow file (`-`: stdin) and checks its plugins against `sandbox`; all problems in one message.
fn load_flow(path: &Path, sandbox: &crate::wasm::Sandbox) -> Result<flow::Flow, Vec<String>> {
    let text = local_run::read_source(path).map_err(|e| vec![e])?;
    let flow = flow::parse_flow(&text, Format::Auto)
        .map_err(|p| p.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let problems = plugin_problems(&flow, sandbox);
    if problems.is_empty() {
        Ok(flow)
    } else {
        Err(problems.iter().map(ToString::to_string).collect())
    }
}

async fn validate(file: &Path, plugins: &[PathBuf]) -> Result<ExitCode, Failure> {
    for p in plugins {
        if !p.exists() {
            return Err(usage(format!("--plugin {}: no such file", p.display())));
        }
    }
    let sandbox = crate::plugins::sandbox_with_plugins(
        crate::plugins::user_cache_dir(),
        64 << 20,
        4,
        plugins,
    )
    .await?;
    match load_flow(file, &sandbox) {
        Ok(flow) => {
            println!(
                "{}: valid flow {:?} ({} steps)",
                file.display(),
                flow.name,
                flow.all_steps().count()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            eprintln!(
                "{}: invalid flow ({} problem{})",
                file.display(),
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            for p in &problems {
                eprintln!("  {p}");
            }
            Ok(ExitCode::from(2))
        }
    }
}

async fn run_local(
    file: &Path,
    payload: &Path,
    local: &LocalRun,
    plugins: &[PathBuf],
    as_json: bool,
) -> Result<ExitCode, Failure> {
    if file.as_os_str() == "-" && payload.as_os_str() == "-" {
        return Err(usage("the flow and --payload cannot both come from stdin"));
    }
    let text = local_run::read_source(payload).map_err(|e| usage(format!("--payload: {e}")))?;
    let body: Value = serde_json::from_str(&text)
        .map_err(|e| usage(format!("{} is not valid JSON: {e}", payload.display())))?;
    let headers = local_run::headers(&local.headers)?;
    let pairs = local_run::secret_pairs(local)?;
    for p in plugins {
        if !p.exists() {
            return Err(usage(format!("--plugin {}: no such file", p.display())));
        }
    }
    let sandbox = Arc::new(
        crate::plugins::sandbox_with_plugins(
            crate::plugins::user_cache_dir(),
            64 << 20,
            4,
            plugins,
        )
        .await?,
    );
    let flow = load_flow(file, &sandbox)
        .map_err(|problems| usage(format!("{}: {}", file.display(), problems.join("; "))))?;
    // Secrets only when given: the scratch store they live in costs a database open.
    let secrets = if pairs.is_empty() {
        None
    } else {
        Some(local_run::temporary_secrets(&pairs).await?)
    };
    let executor = Executor::new(sandbox, secrets.as_ref().map(|s| s.secrets.clone()))
        .with_memory(Arc::new(crate::memory::LocalMemory::default()));
    let scope = secrets
        .as_ref()
        .map_or_else(local_scope, |s| s.scope.clone());
    let run_id = crate::store::new_id();
    let request = RunRequest {
        run_id: &run_id,
        scope: &scope,
        flow_id: "local",
        flow: &flow,
        trigger: json!({ "body": body, "headers": headers }),
        environment: Environment::Production,
        attempt: 1,
        prior_steps: Vec::new(),
        live: true,
        clock_ms: None,
        windows: None,
        defer_retries: false,
    };
    let result = executor.execute(&request).await;
    print_run(&flow, &result, &run_id, as_json);
    Ok(if result.status == RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn generate_flow(
    events: Vec<String>,
    template: Option<String>,
    source: String,
    name: Option<String>,
    output: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let catalog = crate::catalog::Catalog::builtin();
    let generated = match template {
        Some(template) => crate::generate::from_template(catalog, &template).map(|flow| {
            crate::generate::Generated {
                flow,
                unknown: Vec::new(),
            }
        }),
        None => crate::generate::generate(
            catalog,
            &crate::generate::Request {
                source,
                events,
                name,
            },
        ),
    };
    let generated = generated.map_err(|e| usage(e.to_string()))?;
    if let Some(note) = generated.unknown_note() {
        eprintln!("note: {note}");
    }
    let definition = generated.flow;
    let flow = flow::flow_from_value(definition)
        .map_err(|p| Failure::Internal(anyhow::anyhow!("generated flow is invalid: {p}")))?;
    let yaml = crate::yaml::to_string(&flow.to_value()).map_err(|e| Failure::Internal(e.into()))?;
    match output {
        None => print!("{yaml}"),
        Some(path) => {
            std::fs::write(path, &yaml)
                .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))?;
            eprintln!(
                "wrote {} ({} steps)",
                path.display(),
                flow.all_steps().count()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `flow test` runs: a flow file here, or a flow on a server (a version of it, with
/// `version`: `"draft"` or a number).
struct TestTarget<'a> {
    flow: &'a str,
    version: Option<Value>,
    server: &'a str,
    token: Option<&'a str>,
}

async fn test_flow(
    target: TestTarget<'_>,
    input: TestInput,
    live: bool,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let TestTarget {
        flow: target,
        version,
        server,
        token,
    } = target;
    let path = Path::new(target);
    let (flow, result, run_id, tested) = if path.exists() {
        if version.is_some() {
            return Err(usage(format!(
                "{target} is a file: --draft and --flow-version pick a version of a flow on a server"
            )));
        }
        let sandbox = Arc::new(
            crate::plugins::sandbox_with_plugins(
                crate::plugins::user_cache_dir(),
                64 << 20,
                4,
                &[],
            )
            .await?,
        );
        let flow = load_flow(path, &sandbox)
            .map_err(|problems| usage(format!("{target}: {}", problems.join("; "))))?;
        let body = testrun::resolve_payload(&flow, &input).map_err(usage)?;
        let run_id = crate::store::new_id();
        let result = testrun::execute(
            &Executor::new(sandbox, None)
                .with_memory(Arc::new(crate::memory::LocalMemory::default())),
            &local_scope(),
            &run_id,
            "local",
            &flow,
            body,
            live,
        )
        .await;
        (flow, result, run_id, None)
    } else {
        // Not a file: a flow id on the server, with the token the other server commands use.
        let remote = remote::Remote::new(server, token)?;
        let mut body = match &input {
            TestInput::Event(e) => json!({"event": e, "live": live}),
            TestInput::Payload(p) => json!({"payload": p, "live": live}),
        };
        if let Some(version) = version {
            body["version"] = version;
        }
        let id = remote::encode(target);
        let run = remote
            .call(
                reqwest::Method::POST,
                &format!("/v1/flows/{id}/test"),
                remote::Body::Json(&body),
            )
            .await?;
        // The trace is drawn over the version that ran.
        let ran = run["flowVersion"].as_i64();
        let record_path = match ran {
            Some(v) => format!("/v1/flows/{id}/versions/{v}"),
            None => format!("/v1/flows/{id}"),
        };
        let record = remote.get(&record_path).await?;
        let flow = flow::flow_from_value(record["definition"].clone())
            .map_err(|p| Failure::Internal(anyhow::anyhow!("{p}")))?;
        let steps: Vec<StepRecord> = serde_json::from_value(run["steps"].clone())
            .map_err(|e| Failure::Internal(e.into()))?;
        let result = RunResult {
            status: serde_json::from_value(run["status"].clone()).unwrap_or(RunStatus::Failed),
            error: run["error"].as_str().map(str::to_string),
            steps,
            duration_ms: run["durationMs"].as_f64().unwrap_or_default(),
        };
        (
            flow,
            result,
            run["id"].as_str().unwrap_or_default().to_string(),
            ran,
        )
    };
    if let Some(version) = tested {
        if as_json {
            let mut out = run_json(&result, &run_id);
            out["flowVersion"] = json!(version);
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        } else {
            println!("flow {target} version {version}");
            print_run(&flow, &result, &run_id, false);
        }
    } else {
        print_run(&flow, &result, &run_id, as_json);
    }
    Ok(if result.status == RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A run as `--json` prints it.
fn run_json(result: &RunResult, run_id: &str) -> Value {
    json!({ "runId": run_id, "status": result.status, "error": result.error, "durationMs": result.duration_ms, "steps": result.steps })
}

fn print_run(flow: &flow::Flow, result: &RunResult, run_id: &str, as_json: bool) {
    if as_json {
        let out = run_json(result, run_id);
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print!("{}", trace::render(flow, result, trace::use_color()));
    }
}

/// Local runs have no server, so no tenant and no secrets.
fn local_scope() -> crate::store::Scope {
    crate::store::Scope {
        platform_id: "local".into(),
        project_id: "local".into(),
    }
}

const PLUGIN_CARGO: &str = include_str!("../../../templates/plugin/Cargo.toml.tmpl");
const PLUGIN_LIB: &str = include_str!("../../../templates/plugin/lib.rs.tmpl");
const PLUGIN_FLOW: &str = include_str!("../../../templates/plugin/flow.yaml.tmpl");
const PLUGIN_EVENT: &str = include_str!("../../../templates/plugin/event.json.tmpl");

/// `hookflow plugin new`: a project that builds as is, with a flow and event to try it.
fn scaffold_plugin(
    name: &str,
    dir: Option<PathBuf>,
    sdk: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(usage(format!(
            "invalid plugin name {name:?}: use lower-case letters, digits and '-', starting with a letter"
        )));
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        return Err(usage(format!("{} already exists", dir.display())));
    }
    let vendored = sdk.is_none();
    let sdk = match sdk {
        Some(sdk) => std::fs::canonicalize(sdk).map_err(|_| {
            usage(format!(
                "--sdk {}: no such directory (point it at hookflow's plugins/sdk)",
                sdk.display()
            ))
        })?,
        None => PathBuf::from("sdk"),
    };
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &sdk.display().to_string())
    };
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text)
            .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))
    };
    std::fs::create_dir_all(dir.join("src"))
        .map_err(|e| usage(format!("cannot create {}: {e}", dir.display())))?;
    if vendored {
        for file in scaffold::vendored_sdk(&dir.join("sdk")) {
            if let Some(parent) = file.path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| usage(format!("cannot create {}: {e}", parent.display())))?;
            }
            write(file.path, file.text)?;
        }
        write(dir.join("Cargo.lock"), scaffold::lock_file().to_owned())?;
    }
    write(dir.join("Cargo.toml"), fill(PLUGIN_CARGO))?;
    write(dir.join("src/lib.rs"), fill(PLUGIN_LIB))?;
    write(dir.join("flow.yaml"), fill(PLUGIN_FLOW))?;
    write(dir.join("event.json"), PLUGIN_EVENT.to_string())?;
    let crate_name = name.replace('-', "_");
    println!("created {}\n", dir.display());
    println!("  cd {}", dir.display());
    println!("  cargo build --target wasm32-wasip2 --release");
    println!(
        "  hookflow flow run flow.yaml --payload event.json --plugin target/wasm32-wasip2/release/{crate_name}_plugin.wasm"
    );
    println!("  hookflow plugin install target/wasm32-wasip2/release/{crate_name}_plugin.wasm");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_line(args: &[&str]) -> String {
        let error = Cli::try_parse_from(args).expect_err("a usage error");
        clap_error_line(&error.render().to_string())
    }

    #[test]
    fn a_bad_setting_is_one_line_naming_it() {
        let line = usage_line(&["hookflow", "serve", "--workers", "abc"]);
        assert!(!line.contains('\n'));
        assert!(line.starts_with("error: invalid value 'abc'"), "{line}");
        assert!(line.contains("--workers"), "{line}");
        assert!(!line.contains("For more information"), "{line}");
    }

    #[test]
    fn a_missing_argument_keeps_the_list_of_what_is_missing() {
        let line = usage_line(&["hookflow", "flow", "validate"]);
        assert!(!line.contains('\n'));
        assert!(line.contains("required"), "{line}");
        assert!(line.contains('<'), "names the argument: {line}");
    }
}
