//! Assembles the running server: store, sandbox with plugins, flow registry, queue and HTTP API.
//! Takes an already bound listener (tests bind port 0) and a shutdown future (SIGTERM/Ctrl-C in
//! the binary), in the style of mini-redis.

use crate::api::{self, App};
use crate::config::{ServeConfig, SqliteSync};
use crate::exec::Executor;
use crate::mail::Mailer;
use crate::memory::StoreMemory;
use crate::metrics::Metrics;
use crate::queue::{Queue, QueueConfig};
use crate::registry::FlowRegistry;
use crate::secrets::{SecretBox, Secrets};
use crate::store::DynStore;
use crate::stream::{Destinations, RetryPolicy};
use crate::supervise::{Policy, Supervisor};
use crate::wasm::Sandbox;
use anyhow::Context;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod connections;
mod retention;

pub use connections::HttpLimits;

impl HttpLimits {
    /// The limits `hookflow serve` was given.
    pub fn from_config(config: &ServeConfig) -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(config.header_timeout_secs),
            body_timeout: Duration::from_secs(config.body_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            max_connections: config.max_connections,
            shutdown: Duration::from_secs(config.http_shutdown_secs),
        }
    }
}

/// Runs the server on `listener` until `shutdown` completes, then drains: intake stops first
/// (requests in flight get `--http-shutdown-secs`, then their connections are dropped),
/// in-flight runs get the grace period, the rest go back to the queue.
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    // Everything parsed from the settings is built before anything is written: a bad setting
    // stops the server before it creates a data directory, a key or a database.
    let retry = RetryPolicy::parse(&config.delivery_retry_schedule).map_err(anyhow::Error::msg)?;
    let mailer = match &config.smtp_url {
        Some(url) => Some(Arc::new(Mailer::new(url, config.smtp_from.as_deref())?)),
        None => None,
    };
    let run_retention = retention::RunRetention::from_config(&config);
    crate::netguard::set_dev_allow_local(config.dev_allow_local_destinations);
    // Built once, on a blocking thread while the rest starts: the first sign-in with an unknown
    // email then costs one argon2 verification, like a wrong password.
    let decoy_hash = tokio::task::spawn_blocking(crate::access::password::decoy_hash);
    // Owner-only: it holds the database, the secret key and the admin token.
    crate::files::create_private_dir(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    // The audit chain's key comes from the secret key material (created on first start), and is
    // installed before anything can append an audit event.
    SecretBox::load(config.secret_key.as_deref(), &config.data_dir)?;
    crate::store::audit::install_key(
        crate::audit::load_key(config.secret_key.as_deref(), &config.data_dir)
            .map_err(anyhow::Error::msg)?,
    )?;
    let url = config.database().map_err(anyhow::Error::msg)?;
    let options = crate::store::OpenOptions {
        sqlite_synchronous_full: config.sqlite_synchronous == SqliteSync::Full,
        ..Default::default()
    };
    let opened = crate::store::open(&url, &options)
        .await
        .with_context(|| format!("opening the database {}", url.redacted()))?;
    if opened.recovered > 0 {
        tracing::warn!(
            recovered = opened.recovered,
            "re-queued runs left RUNNING by a previous process"
        );
    }
    let (store, work_listener) = (opened.store, opened.listener);
    let plugin_dir = config
        .plugin_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("plugins"));
    let sandbox = Arc::new(
        crate::plugins::sandbox_with_plugins(
            Some(
                config
                    .cache_dir
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join("cache")),
            ),
            config.step_memory_mb << 20,
            config.workers.min(1024) as u32,
            &crate::plugins::wasm_files(&plugin_dir)?,
        )
        .await?,
    );
    let plugin_sync = Arc::new(crate::plugins::PluginSync::new(&sandbox));
    plugin_sync.run(&sandbox, &store).await?;
    release_startup_memory();
    let admin_token = admin_token(&config)?;
    let metrics = Arc::new(Metrics::default());
    let secret_box = Arc::new(SecretBox::load(
        config.secret_key.as_deref(),
        &config.data_dir,
    )?);
    let mut flows = FlowRegistry::new(store.clone(), sandbox.clone(), secret_box.clone());
    if config.is_shared_database() {
        flows = flows.shared(crate::registry::SHARED_CACHE_TTL);
    }
    let sealed = flows
        .seal_stored_credentials()
        .await
        .context("encrypting the trigger credentials stored in clear")?;
    if sealed > 0 {
        tracing::info!(
            rows = sealed,
            "encrypted trigger credentials stored in clear"
        );
    }
    let flows = Arc::new(flows);
    let queue = Queue::new(
        store.clone(),
        QueueConfig {
            concurrency: config.workers,
            lease: config.lease(),
            ..QueueConfig::default()
        },
    );
    let secrets = Arc::new(Secrets::new(store.clone(), secret_box.clone()));
    let destinations = Arc::new(Destinations::new(
        store.clone(),
        secret_box,
        retry,
        crate::netguard::dev_allow_local(),
    ));
    let executor = Executor::new(sandbox.clone(), Some(secrets.clone()))
        .with_mailer(mailer.clone())
        .with_memory(Arc::new(StoreMemory(store.clone())))
        .with_windows(Arc::new(crate::detect::StoreWindows::new(store.clone())));
    let executor = Arc::new(executor);
    let sandbox_for_sync = sandbox.clone();
    let app = Arc::new(App {
        store: store.clone(),
        flows: flows.clone(),
        sandbox,
        queue: queue.clone(),
        executor: executor.clone(),
        secrets,
        destinations: destinations.clone(),
        metrics: metrics.clone(),
        admin_token,
        max_body_bytes: config.max_body_bytes,
        max_batch_events: config.max_batch_events,
        trusted_proxies: config.trusted_proxies.clone(),
        shared_database: config.is_shared_database(),
        runs_work: config.role.runs_work(),
        sign_ins: Default::default(),
        sessions: config.sessions(),
        public_url: config.public_url.clone(),
        mailer,
        sign_in_failures: Default::default(),
        decoy_hash: decoy_hash
            .await
            .context("building the sign-in decoy hash")?,
        public_https: config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://")),
    });

    let address = listener.local_addr()?;
    let mut origins = vec![
        format!("http://{address}"),
        format!("http://localhost:{}", address.port()),
    ];
    if let Some(public) = &config.public_url {
        origins.push(public.trim_end_matches('/').to_string());
    }
    destinations.set_local(
        origins,
        Arc::new(crate::api::InProcessIntake(Arc::downgrade(&app))),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = Vec::new();
    // Each background task runs supervised: a panic is logged, counted and restarted, and
    // `/healthz` reports a task that is down or keeps failing.
    let supervisor = Supervisor::new(metrics.tasks.clone(), Policy::default());
    let plugins_installed = Arc::new(tokio::sync::Notify::new());
    if config.is_shared_database() {
        let (store, installed, stop) = (store.clone(), plugins_installed.clone(), stop_rx.clone());
        background.push(supervisor.spawn("plugin_sync", stop_rx.clone(), move || {
            plugin_sync_loop(
                plugin_sync.clone(),
                sandbox_for_sync.clone(),
                store.clone(),
                installed.clone(),
                stop.clone(),
            )
        }));
    }
    if let Some(listener) = work_listener {
        let listener = Arc::new(tokio::sync::Mutex::new(listener));
        let queue = config.role.runs_work().then(|| queue.clone());
        let stop = stop_rx.clone();
        background.push(
            supervisor.spawn("notification_relay", stop_rx.clone(), move || {
                relay_notifications(
                    listener.clone(),
                    queue.clone(),
                    plugins_installed.clone(),
                    stop.clone(),
                )
            }),
        );
    }
    if config.role.runs_work() {
        let grace = config.shutdown_grace();
        background.push({
            let stop = stop_rx.clone();
            supervisor.spawn("delivery_worker", stop_rx.clone(), move || {
                crate::stream::run_worker(destinations.clone(), stop.clone(), grace)
            })
        });
        background.push({
            let (store, days, archive, stop) = (
                store.clone(),
                config.audit_retention_days,
                config.audit_archive_dir.clone(),
                stop_rx.clone(),
            );
            let every = Duration::from_secs(config.audit_retention_interval_secs.max(1));
            supervisor.spawn("audit_retention", stop_rx.clone(), move || {
                retention_job(store.clone(), days, archive.clone(), every, stop.clone())
            })
        });
        if let Some(retention) = run_retention {
            let (store, stop) = (store.clone(), stop_rx.clone());
            background.push(supervisor.spawn("run_retention", stop_rx.clone(), move || {
                retention::run_retention_job(store.clone(), retention.clone(), stop.clone())
            }));
        }
        background.push({
            let (store, flows, queue, stop) =
                (store.clone(), flows.clone(), queue.clone(), stop_rx.clone());
            supervisor.spawn("schedule", stop_rx.clone(), move || {
                crate::schedule::run(store.clone(), flows.clone(), queue.clone(), stop.clone())
            })
        });
        // The run queue goes first in the list: draining it is what shutdown waits for most.
        let (dispatcher, stop) = (queue.clone(), stop_rx.clone());
        background.insert(
            0,
            supervisor.spawn("queue_dispatcher", stop_rx.clone(), move || {
                dispatcher.clone().run(
                    executor.clone(),
                    flows.clone(),
                    metrics.clone(),
                    stop.clone(),
                    grace,
                )
            }),
        );
        queue.wake();
    }
    let routes = if config.role.serves_api() {
        // The console at `/` calls the same API in-process, so it can do nothing the API
        // would refuse the same person.
        crate::console::router(api::router(app.clone()), app)
    } else {
        api::ops_router(app)
    };
    let limits = HttpLimits::from_config(&config);
    tracing::info!(address = %listener.local_addr()?, database = %url.redacted(), role = ?config.role, "hookflow listening");
    tracing::info!(
        header_timeout_secs = config.header_timeout_secs,
        body_timeout_secs = config.body_timeout_secs,
        idle_timeout_secs = config.idle_timeout_secs,
        max_connections = config.max_connections,
        http_shutdown_secs = config.http_shutdown_secs,
        "connection limits"
    );
    // Only now, with every setting checked, the database open and migrated and the plugins
    // compiled, does the server say it is listening.
    ready(listener.local_addr()?);
    connections::serve(listener, routes, limits, shutdown).await;
    tracing::info!("intake stopped; draining runs");
    let _ = stop_tx.send(true);
    for task in background {
        task.await?;
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// Compiling the plugins at start-up allocates far more than serving does; give the freed
/// memory back to the OS so the resident size reflects the running server. (The binary's
/// global allocator is mimalloc; with any other allocator this finds nothing to free.)
///
/// mimalloc keeps memory a thread freed in that thread's heap until the thread itself collects,
/// and Cranelift compiles on rayon's global pool: so every pool thread collects, then this one
/// (which also returns the now empty segments to the OS). Without it a server whose plugins
/// were just compiled stays ~70 MiB larger than one that loaded them from the cache.
pub fn release_startup_memory() {
    // SAFETY: `mi_collect` only walks and trims mimalloc's own heaps; no pointers are passed.
    let collect = || unsafe { libmimalloc_sys::mi_collect(true) };
    rayon::broadcast(|_| collect());
    collect();
}

/// Relays PostgreSQL's hints: queued runs wake the local queue (when this process runs work),
/// plugin installs (by any process) start a plugin sync at once.
async fn relay_notifications(
    listener: Arc<tokio::sync::Mutex<crate::store::WorkListener>>,
    queue: Option<Arc<Queue>>,
    plugins_installed: Arc<tokio::sync::Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut listener = listener.lock().await;
    loop {
        tokio::select! {
            hints = listener.wait() => match hints {
                Ok(hints) => {
                    if let (true, Some(queue)) = (hints.runs, &queue) {
                        queue.wake();
                    }
                    if hints.plugins {
                        plugins_installed.notify_one();
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "PostgreSQL notifications interrupted; polling meanwhile");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// The configured admin token, or the one generated on first start (stored with mode 0600).
fn admin_token(config: &ServeConfig) -> anyhow::Result<String> {
    if let Some(token) = &config.admin_token {
        return Ok(token.clone());
    }
    let path = config.data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_string());
    }
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    let token = format!(
        "hf_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    crate::files::write_private(&path, &token)?;
    eprintln!(
        "Generated admin token (shown once; stored in {}):\n  {token}",
        path.display()
    );
    Ok(token)
}

/// How often a process on a shared database looks for plugins installed through another one
/// when no notification came (a missed `hookflow_plugins` hint, e.g. across a reconnect).
const PLUGIN_SYNC_INTERVAL: Duration = Duration::from_secs(10);

/// Loads plugins installed through other processes and unloads those they removed: as soon as
/// a change is announced, and every [`PLUGIN_SYNC_INTERVAL`] regardless.
async fn plugin_sync_loop(
    sync: Arc<crate::plugins::PluginSync>,
    sandbox: Arc<Sandbox>,
    store: DynStore,
    installed: Arc<tokio::sync::Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = installed.notified() => {}
            _ = tokio::time::sleep(PLUGIN_SYNC_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(error) = sync.run(&sandbox, &store).await {
            tracing::warn!(%error, "looking for installed or removed plugins failed");
        }
    }
}

/// Enforces audit retention now and then every `every`, until shutdown.
async fn retention_job(
    store: DynStore,
    days: f64,
    archive: Option<PathBuf>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match crate::audit::enforce_retention(&store, days, archive.as_deref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, days, "audit retention applied"),
            Err(error) => tracing::error!(%error, "audit retention failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}
