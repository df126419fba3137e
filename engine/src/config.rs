//! Server configuration: command-line flags, each with a `HOOKFLOW_*` environment variable, over
//! built-in defaults.

use crate::store::DatabaseUrl;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// How hard SQLite works to keep a commit: `full` survives power loss, `normal` survives a crash
/// of the process (WAL) but may lose the last commits on power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSync {
    Full,
    Normal,
}

/// What one `hookflow serve` process does. Several processes on one PostgreSQL database can
/// split the work: `api` processes take webhooks and admin calls, `worker` processes run flows,
/// deliver audit events, fire cron triggers and enforce retention; `all` does both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    All,
    Api,
    Worker,
}

impl Role {
    /// Serves the webhook intake and the admin API.
    pub fn serves_api(self) -> bool {
        self != Role::Worker
    }

    /// Runs queued flows and the background jobs.
    pub fn runs_work(self) -> bool {
        self != Role::Api
    }
}

/// Highest `--max-batch-events`: a batch is written in one transaction, which should stay
/// far from anything a database or the group commit's 2,000-request batches ever see.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// Longest HTTP timeout or shutdown deadline accepted (an hour): longer ones are a typo.
const MAX_TIMEOUT_SECS: u64 = 3600;
/// Most client connections `--max-connections` allows (the cap is a semaphore of this size).
const MAX_CONNECTIONS: usize = 1 << 20;

/// Everything `hookflow serve` can be told.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "HOOKFLOW_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// `api` (intake and admin API), `worker` (runs, deliveries, cron, retention; serves only
    /// `/healthz` and `/metrics`) or `all`. Split roles need a PostgreSQL database.
    #[arg(long, env = "HOOKFLOW_ROLE", value_enum, default_value = "all")]
    pub role: Role,
    /// Database URL: `sqlite://PATH` (one process) or `postgres://USER[:PASS]@HOST:PORT/DB`
    /// (several processes may share it). Default: a SQLite file in the data directory.
    #[arg(long, env = "HOOKFLOW_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Directory for the default database, the compiled-plugin cache and the admin token file.
    #[arg(long, env = "HOOKFLOW_DATA_DIR", default_value = "hookflow-data")]
    pub data_dir: PathBuf,
    /// Admin API token. When unset, one is generated on first start, stored in the data directory
    /// and printed once.
    #[arg(long, env = "HOOKFLOW_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Key for secrets at rest: 32 bytes, base64. When unset, one is generated on first start
    /// and kept in `<data dir>/secret.key`.
    #[arg(long, env = "HOOKFLOW_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Proxies (IP addresses, comma-separated) whose `X-Forwarded-For` names the client in
    /// audit events. Others' is ignored.
    #[arg(long, env = "HOOKFLOW_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Seconds between delivery attempts to event destinations (comma-separated); the number
    /// of entries is the number of retries.
    #[arg(
        long,
        env = "HOOKFLOW_DELIVERY_RETRY_SCHEDULE",
        default_value = "5,300,1800,7200,18000,36000,36000"
    )]
    pub delivery_retry_schedule: String,
    /// Audit events older than this many days are deleted (after archiving, if configured);
    /// fractions allowed, more than 0.
    #[arg(long, env = "HOOKFLOW_AUDIT_RETENTION_DAYS", default_value_t = 90.0)]
    pub audit_retention_days: f64,
    /// Finished runs (with their step results and events) older than this many days are deleted
    /// in short transactions of at most 1,000 runs, sized and spaced so intake keeps its writes
    /// flowing (fractions allowed: `0.5` is 12 hours). Queued and running runs are never
    /// deleted. Unset: runs are kept.
    #[arg(long, env = "HOOKFLOW_RUN_RETENTION_DAYS")]
    pub run_retention_days: Option<f64>,
    /// Per-flow run retention overriding `--run-retention-days`: `FLOW_ID=DAYS`, comma-separated
    /// (a flow listed here keeps its runs this long even when no default is set).
    #[arg(
        long,
        env = "HOOKFLOW_RUN_RETENTION_FLOW_DAYS",
        value_delimiter = ',',
        value_parser = parse_flow_days
    )]
    pub run_retention_flow_days: Vec<(String, f64)>,
    /// How often run retention runs, in seconds.
    #[arg(
        long,
        env = "HOOKFLOW_RUN_RETENTION_INTERVAL_SECS",
        default_value_t = 3600,
        hide = true
    )]
    pub run_retention_interval_secs: u64,
    /// Where run retention archives what it deletes, before the delete: each run with its event
    /// and step results as one JSON line, gzip, one owner-only file per day the run was created
    /// (`runs-YYYY-MM-DD.jsonl.gz`), synced first. Unset: runs are only deleted.
    #[arg(long, env = "HOOKFLOW_RUN_ARCHIVE_DIR")]
    pub run_archive_dir: Option<PathBuf>,
    /// Allow destinations and plugin HTTP to reach loopback, private ranges and plain `http://`
    /// (development only; link-local cloud metadata stays refused).
    #[arg(
        long,
        env = "HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true"
    )]
    pub dev_allow_local_destinations: bool,
    /// Where expired audit events are archived (gzip JSONL, one file per day) before deletion.
    #[arg(long, env = "HOOKFLOW_AUDIT_ARCHIVE_DIR")]
    pub audit_archive_dir: Option<PathBuf>,
    /// How often retention runs, in seconds.
    #[arg(
        long,
        env = "HOOKFLOW_AUDIT_RETENTION_INTERVAL_SECS",
        default_value_t = 3600,
        hide = true
    )]
    pub audit_retention_interval_secs: u64,
    /// The URL other systems reach this server at (e.g. `https://hooks.example.com`); event
    /// destinations pointing at its flow webhooks are delivered in-process.
    #[arg(long, env = "HOOKFLOW_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Compiled-plugin cache. Default: `<data dir>/cache`.
    #[arg(long, env = "HOOKFLOW_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Extra plugin components (`*.wasm`) loaded at start. Default: `<data dir>/plugins`.
    #[arg(long, env = "HOOKFLOW_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Largest webhook body accepted, in bytes.
    #[arg(long, env = "HOOKFLOW_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Most events one webhook request may carry as a batch (a JSON array or NDJSON body); the
    /// body size limit applies to the whole batch as well.
    #[arg(long, env = "HOOKFLOW_MAX_BATCH_EVENTS", default_value_t = 1000)]
    pub max_batch_events: usize,
    /// Runs executed at once by this process.
    #[arg(long, env = "HOOKFLOW_WORKERS", default_value_t = 64)]
    pub workers: usize,
    /// Memory a single plugin step may use, in MiB.
    #[arg(long, env = "HOOKFLOW_STEP_MEMORY_MB", default_value_t = 64)]
    pub step_memory_mb: usize,
    /// SQLite durability.
    #[arg(
        long,
        env = "HOOKFLOW_SQLITE_SYNCHRONOUS",
        value_enum,
        default_value = "full"
    )]
    pub sqlite_synchronous: SqliteSync,
    /// Seconds to let in-flight runs finish on shutdown before handing them back to the queue.
    #[arg(long, env = "HOOKFLOW_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// SMTP server the `email` plugin sends through:
    /// `smtp://[user:pass@]host[:port][?tls=required]` or `smtps://...`. Unset: e-mail is off.
    #[arg(long, env = "HOOKFLOW_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender for e-mails that name none (`hookflow <alerts@example.com>`).
    #[arg(long, env = "HOOKFLOW_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Seconds a claimed run stays leased without renewal.
    #[arg(long, env = "HOOKFLOW_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// Seconds a client may take to send a request's headers, counted from their first byte;
    /// the connection is closed after that (slowloris).
    #[arg(long, env = "HOOKFLOW_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a client may take to send a request's whole body, counted from the end of its
    /// headers; a request still sending then is answered 408 and its connection closed.
    #[arg(long, env = "HOOKFLOW_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,
    /// Seconds a connection may stay open with nothing to do (no request in progress, no bytes
    /// read or written) before it is closed: new connections that send nothing and kept-alive
    /// ones between requests.
    #[arg(long, env = "HOOKFLOW_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,
    /// Client connections served at once. Past it the server stops accepting: new connections
    /// wait in the kernel's listen backlog until one ends (each needs a file descriptor, so keep
    /// it under `ulimit -n`).
    #[arg(long, env = "HOOKFLOW_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds requests in flight get to finish after a shutdown signal; connections still open
    /// then are dropped, whatever their clients do. Runs are drained after that
    /// (`--shutdown-grace-secs`).
    #[arg(long, env = "HOOKFLOW_HTTP_SHUTDOWN_SECS", default_value_t = 10)]
    pub http_shutdown_secs: u64,
    /// Seconds a console session may stay unused before it ends (idle expiry).
    #[arg(long, env = "HOOKFLOW_SESSION_IDLE_SECS", default_value_t = 12 * 3600)]
    pub session_idle_secs: u64,
    /// Seconds a console session lasts at most, however active (absolute expiry).
    #[arg(long, env = "HOOKFLOW_SESSION_MAX_SECS", default_value_t = 7 * 24 * 3600)]
    pub session_max_secs: u64,
}

/// Longest audit retention accepted, in days (a hundred years: compliance keeps logs long).
pub const MAX_AUDIT_RETENTION_DAYS: f64 = 36_500.0;

/// Longest run retention accepted, in days (ten years).
pub const MAX_RUN_RETENTION_DAYS: f64 = 3650.0;

/// One `FLOW_ID=DAYS` entry of `--run-retention-flow-days`.
fn parse_flow_days(text: &str) -> Result<(String, f64), String> {
    let (flow, days) = text
        .split_once('=')
        .ok_or_else(|| format!("expected FLOW_ID=DAYS, got {text:?}"))?;
    let days = days
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("{:?} is not a number of days", days.trim()))?;
    let flow = flow.trim();
    if flow.is_empty() {
        return Err(format!("expected FLOW_ID=DAYS, got {text:?}"));
    }
    Ok((flow.to_string(), days))
}

/// Checks a retention in days: positive, finite, at most [`MAX_RUN_RETENTION_DAYS`].
fn check_run_days(flag: &str, days: f64) -> Result<(), String> {
    if !(days.is_finite() && days > 0.0 && days <= MAX_RUN_RETENTION_DAYS) {
        return Err(format!(
            "{flag} must be more than 0 and at most {MAX_RUN_RETENTION_DAYS} days, got {days}"
        ));
    }
    Ok(())
}

/// Checks an archive directory: named, and a directory if it exists (it is created, owner-only,
/// at the first archive).
fn check_archive_dir(flag: &str, dir: &std::path::Path) -> Result<(), String> {
    if dir.as_os_str().is_empty() {
        return Err(format!("{flag} must name a directory, got an empty path"));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "{flag} must be a directory, {} is not one",
            dir.display()
        ));
    }
    Ok(())
}

impl ServeConfig {
    /// The database URL as given, defaulting to `<data dir>/hookflow.db`.
    pub fn database_url(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("hookflow.db").display()))
    }

    /// The parsed database URL (the store decides what a URL means).
    pub fn database(&self) -> Result<DatabaseUrl, String> {
        DatabaseUrl::parse(&self.database_url())
            .map_err(|e| format!("--database (HOOKFLOW_DATABASE_URL): {e}"))
    }

    /// True when the database is shared by several processes (PostgreSQL).
    pub fn is_shared_database(&self) -> bool {
        self.database().is_ok_and(|url| url.is_shared())
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Idle and absolute session lifetimes.
    pub fn sessions(&self) -> crate::api::SessionSettings {
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        crate::api::SessionSettings {
            idle_ms: ms(self.session_idle_secs),
            max_ms: ms(self.session_max_secs),
        }
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.max(1))
    }

    /// Checks values clap cannot, with messages naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 || self.workers > 4096 {
            return Err(format!(
                "--workers (HOOKFLOW_WORKERS) must be 1..=4096, got {}",
                self.workers
            ));
        }
        if self.max_body_bytes == 0 {
            return Err("--max-body-bytes (HOOKFLOW_MAX_BODY_BYTES) must be positive".into());
        }
        if self.max_batch_events == 0 || self.max_batch_events > MAX_BATCH_EVENTS {
            return Err(format!(
                "--max-batch-events (HOOKFLOW_MAX_BATCH_EVENTS) must be 1..={MAX_BATCH_EVENTS}, got {}",
                self.max_batch_events
            ));
        }
        if self.step_memory_mb == 0 || self.step_memory_mb > 4096 {
            return Err(format!(
                "--step-memory-mb (HOOKFLOW_STEP_MEMORY_MB) must be 1..=4096, got {}",
                self.step_memory_mb
            ));
        }
        if let Some(token) = &self.admin_token
            && token.len() < 16
        {
            return Err("HOOKFLOW_ADMIN_TOKEN must be at least 16 characters".into());
        }
        if self.session_idle_secs == 0 || self.session_max_secs == 0 {
            return Err(
                "HOOKFLOW_SESSION_IDLE_SECS and HOOKFLOW_SESSION_MAX_SECS must be positive".into(),
            );
        }
        for (flag, value) in [
            (
                "--header-timeout-secs (HOOKFLOW_HEADER_TIMEOUT_SECS)",
                self.header_timeout_secs,
            ),
            (
                "--body-timeout-secs (HOOKFLOW_BODY_TIMEOUT_SECS)",
                self.body_timeout_secs,
            ),
            (
                "--idle-timeout-secs (HOOKFLOW_IDLE_TIMEOUT_SECS)",
                self.idle_timeout_secs,
            ),
        ] {
            if value == 0 || value > MAX_TIMEOUT_SECS {
                return Err(format!(
                    "{flag} must be 1..={MAX_TIMEOUT_SECS}, got {value}"
                ));
            }
        }
        if self.http_shutdown_secs > MAX_TIMEOUT_SECS {
            return Err(format!(
                "--http-shutdown-secs (HOOKFLOW_HTTP_SHUTDOWN_SECS) must be 0..={MAX_TIMEOUT_SECS}, got {}",
                self.http_shutdown_secs
            ));
        }
        if self.max_connections == 0 || self.max_connections > MAX_CONNECTIONS {
            return Err(format!(
                "--max-connections (HOOKFLOW_MAX_CONNECTIONS) must be 1..={MAX_CONNECTIONS}, got {}",
                self.max_connections
            ));
        }
        if !(self.audit_retention_days.is_finite()
            && self.audit_retention_days > 0.0
            && self.audit_retention_days <= MAX_AUDIT_RETENTION_DAYS)
        {
            return Err(format!(
                "--audit-retention-days (HOOKFLOW_AUDIT_RETENTION_DAYS) must be more than 0 and at most {MAX_AUDIT_RETENTION_DAYS} days, got {}",
                self.audit_retention_days
            ));
        }
        if self.audit_retention_interval_secs == 0 || self.run_retention_interval_secs == 0 {
            return Err("HOOKFLOW_AUDIT_RETENTION_INTERVAL_SECS and HOOKFLOW_RUN_RETENTION_INTERVAL_SECS must be positive".into());
        }
        if let Some(days) = self.run_retention_days {
            check_run_days("--run-retention-days (HOOKFLOW_RUN_RETENTION_DAYS)", days)?;
        }
        for (flow, days) in &self.run_retention_flow_days {
            check_run_days(
                &format!("--run-retention-flow-days (HOOKFLOW_RUN_RETENTION_FLOW_DAYS) for {flow}"),
                *days,
            )?;
        }
        for (flag, dir) in [
            (
                "--audit-archive-dir (HOOKFLOW_AUDIT_ARCHIVE_DIR)",
                &self.audit_archive_dir,
            ),
            (
                "--run-archive-dir (HOOKFLOW_RUN_ARCHIVE_DIR)",
                &self.run_archive_dir,
            ),
        ] {
            if let Some(dir) = dir {
                check_archive_dir(flag, dir)?;
            }
        }
        crate::stream::RetryPolicy::parse(&self.delivery_retry_schedule)
            .map_err(|e| format!("--delivery-retry-schedule ({e})"))?;
        if let Some(url) = &self.smtp_url {
            crate::mail::Mailer::new(url, self.smtp_from.as_deref())
                .map_err(|e| format!("--smtp-url/--smtp-from ({e})"))?;
        }
        if let Some(public) = &self.public_url
            && !(public.starts_with("http://") || public.starts_with("https://"))
        {
            return Err(format!(
                "--public-url (HOOKFLOW_PUBLIC_URL) must start with http:// or https://, got {public:?}"
            ));
        }
        let url = self.database()?;
        if self.role != Role::All && !url.is_shared() {
            return Err(
                "--role (HOOKFLOW_ROLE) api or worker needs a PostgreSQL database; \
                 with SQLite one process does everything (--role all)"
                    .into(),
            );
        }
        Ok(())
    }
}
