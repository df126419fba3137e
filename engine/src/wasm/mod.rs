//! The sandbox: the only module that touches wasmtime.
//!
//! One [`Sandbox`] per process owns one `wasmtime::Engine` (pooling allocator, epoch interruption
//! driven by a ticker thread). Each plugin version is compiled once (cached on disk by content
//! hash and engine compatibility) and linked once (`instantiate_pre`). Every step gets a fresh
//! `Store` with a memory limiter, an epoch deadline and a wall-clock timeout, and the store is
//! dropped afterwards, so nothing a plugin did survives into the next step, trap or not.
//!
//! Plugins see only what the host grants: a WASI context with no preopened directories, no
//! environment, no sockets and capped stdout/stderr; outbound HTTP (`wasi:http`) only to the
//! step's `allowedHosts` after the private-address check ([`http`]); secrets, mail and memory
//! only as the step's grants allow (the `hookflow:plugin/*` interfaces). A step without
//! `allowedHosts` is not linked to the real outgoing handler at all: its instance comes from a
//! second linker whose `outgoing-handler.handle` only refuses ([`http::add_refusing_handler`]).
//!
//! Plugin code runs on the sandbox's own lower-priority threads ([`threads`]), not on the
//! runtime serving HTTP intake, and what plugins make the host hold for them (header maps,
//! requests, bodies, streams) is limited per step and across the process ([`budget`]).

mod budget;
mod cache;
mod host;
mod http;
mod threads;

use crate::flow::hosts::HostPattern;
use crate::mail::MailGrant;
use crate::memory::MemoryGrant;
use budget::{HostMemory, HostMemoryPool, LiveMemory};
use host::{HostState, MemoryLimits};
use http::HttpPolicy;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

pub use host::{LogLevel, LogLine, SyncResponse};

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

use exports::RunContext as WitRunContext;

mod exports {
    pub use super::hookflow::plugin::types::RunContext;
}

/// Tunables of the sandbox. Defaults are the product's documented defaults.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Steps that may run at once (pool slots); more wait for a slot.
    pub max_concurrency: u32,
    /// Linear memory a step may grow to.
    pub memory_limit: usize,
    /// Largest step output accepted.
    pub max_output_bytes: usize,
    /// Largest component accepted.
    pub max_component_bytes: usize,
    /// Bytes all running steps together may make the host hold for them (header maps,
    /// requests, bodies, streams); one step may hold a quarter of it.
    pub host_memory_budget: usize,
    /// New steps wait while the steps alive hold this much linear memory (a step already
    /// running may still grow to `memory_limit`); with none alive one always starts.
    pub live_memory_budget: usize,
    /// Threads plugin code runs on (at a lower priority than the server's).
    pub threads: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            cache_dir: None,
            max_concurrency: 64,
            memory_limit: 64 << 20,
            max_output_bytes: 1 << 20,
            max_component_bytes: 32 << 20,
            host_memory_budget: 64 << 20,
            // ~40 JavaScript steps or ~90 Rust ones at once, far more than two CPUs run.
            live_memory_budget: 96 << 20,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub input_schema: Value,
    pub side_effects: bool,
    /// Hex SHA-256 of the component bytes.
    pub digest: String,
    pub builtin: bool,
    /// Input fields taken as written, never rendered as templates: the schema marks them
    /// `"x-hookflow-raw": true` (the `javascript` plugin's `code`, where event data rendered
    /// into the source would be code injection). Read once here, not per step.
    #[serde(skip)]
    pub raw_inputs: Vec<String>,
    /// The component imports `hookflow:plugin/event`: its steps get the trigger event, which
    /// the executor builds only for them.
    #[serde(skip)]
    pub wants_event: bool,
}

/// Identity of the step being run, handed to the plugin.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub run_id: String,
    pub flow_id: String,
    pub step_name: String,
    pub attempt: u32,
    pub test_run: bool,
}

/// How one call into a plugin ended.
#[derive(Debug, Clone)]
pub enum StepOutcome {
    /// The plugin returned output (JSON text, already checked to parse).
    Succeeded { output: Value },
    /// The plugin returned an error, trapped, ran out of memory or produced bad output.
    Failed { message: String, retryable: bool },
    /// The step ran past its deadline and was interrupted.
    TimedOut { after: Duration },
}

/// A finished plugin call: its outcome and what it logged.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub outcome: StepOutcome,
    pub logs: Vec<LogLine>,
    /// Set when the plugin asked to end the run (filter).
    pub end_run: Option<String>,
    /// Outbound requests the policy refused, with the reason.
    pub refused_requests: Vec<String>,
    /// Set when the plugin set the `/sync` HTTP response (respond).
    pub response: Option<SyncResponse>,
    /// The largest linear memory the step's instance grew to, in bytes.
    pub peak_memory_bytes: usize,
}

impl StepReport {
    /// A step that failed before or around its plugin call, with nothing logged.
    fn failed(message: String) -> StepReport {
        StepReport {
            outcome: StepOutcome::Failed {
                message,
                retryable: false,
            },
            logs: Vec::new(),
            end_run: None,
            refused_requests: Vec::new(),
            response: None,
            peak_memory_bytes: 0,
        }
    }
}

/// What the flow grants one step: hosts it may call, the secrets it may read and whom it may
/// e-mail.
#[derive(Clone, Default)]
pub struct Grants {
    pub allowed_hosts: Arc<Vec<HostPattern>>,
    /// Values of the granted secrets, by name.
    pub secrets: HashMap<String, String>,
    /// Development mode: plain HTTP and private addresses allowed.
    pub allow_local: bool,
    /// The mailer (when the server has one) and the step's `allowedRecipients`.
    pub mail: MailGrant,
    /// The flow's memory; `None` where no memory is available.
    pub memory: Option<MemoryGrant>,
    /// The run's trigger event as CloudEvent JSON; set for plugins that import `event`
    /// ([`PluginInfo::wants_event`]), `None` elsewhere (it reads as `null`).
    pub event: Option<Arc<str>>,
}

/// Errors loading a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("component is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    #[error("the component imports {0}, which hookflow does not grant to plugins")]
    ForbiddenImport(String),
    #[error("the component does not implement the hookflow:plugin world: {0}")]
    WrongWorld(String),
    #[error("describe() failed: {0}")]
    Describe(String),
    #[error("describe() returned an invalid input schema: {0}")]
    BadSchema(String),
}

/// A compiled, vetted plugin not yet registered.
pub struct Prepared(Arc<LoadedPlugin>);

impl Prepared {
    /// What the plugin describes itself as.
    pub fn info(&self) -> &PluginInfo {
        &self.0.info
    }
}

struct LoadedPlugin {
    info: PluginInfo,
    /// Linked without the outgoing handler (it refuses): steps without `allowedHosts`, and
    /// `describe`.
    offline: PluginPre<HostState>,
    /// Linked with the real outgoing handler, for steps with `allowedHosts`; `None` when the
    /// component does not import it (then `offline` serves every step).
    online: Option<PluginPre<HostState>>,
}

impl LoadedPlugin {
    /// The linked component a step with these grants is instantiated from.
    fn pre_for(&self, grants: &Grants) -> &PluginPre<HostState> {
        match &self.online {
            Some(online) if !grants.allowed_hosts.is_empty() => online,
            _ => &self.offline,
        }
    }
}

/// The process-wide plugin runtime.
pub struct Sandbox {
    engine: Engine,
    /// Everything a plugin may import, with the policed outgoing handler.
    linker: Linker<HostState>,
    /// The same without the outgoing handler: `handle` only refuses.
    offline_linker: Linker<HostState>,
    config: SandboxConfig,
    plugins: RwLock<HashMap<(String, String), Arc<LoadedPlugin>>>,
    slots: Arc<Semaphore>,
    host_memory: Arc<HostMemoryPool>,
    live_memory: Arc<LiveMemory>,
    /// Where plugin code runs: the sandbox's own threads, not the runtime serving HTTP.
    threads: threads::SandboxThreads,
}

/// Interfaces a plugin may import. Anything else (sockets, HTTP, ...) is refused at load time.
const GRANTED_IMPORT_PREFIXES: &[&str] = &[
    "hookflow:plugin/log@0.1.",
    "hookflow:plugin/types@0.1.",
    "hookflow:plugin/secrets@0.1.",
    "hookflow:plugin/control@0.1.",
    "hookflow:plugin/mail@0.1.",
    "hookflow:plugin/memory@0.1.",
    "hookflow:plugin/event@0.1.",
    "wasi:http/outgoing-handler@0.2.",
    "wasi:http/types@0.2.",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
];

/// How long past its deadline a step blocked in a host call may run before it is cancelled.
const HOST_CALL_MARGIN: Duration = Duration::from_millis(100);

/// How long a component's `describe()` may take, like a step's default timeout.
const DESCRIBE_DEADLINE: Duration = Duration::from_secs(10);

/// Epoch tick. Deadlines are checked at this granularity.
const EPOCH_TICK: Duration = Duration::from_millis(5);

impl Sandbox {
    /// Builds the engine (pooling allocator, falling back to on-demand allocation where the
    /// address space is too small) and starts the epoch ticker.
    pub fn new(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        let engine = match Engine::new(&engine_config(&config, true)) {
            Ok(engine) => engine,
            Err(error) => {
                tracing::warn!(%error, "pooling allocator unavailable, using on-demand allocation");
                Engine::new(&engine_config(&config, false)).map_err(wasmtime_error)?
            }
        };
        start_epoch_ticker(&engine);
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasmtime_error)?;
        Plugin::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(wasmtime_error)?;
        // `wasi:http/types` in both (a request must be built before it can be refused, and its
        // host objects are capped per step); the outgoing handler differs.
        use wasmtime_wasi_http::p2::bindings::{LinkOptions, http::types};
        types::add_to_linker::<_, wasmtime_wasi_http::WasiHttp>(
            &mut linker,
            &LinkOptions::default().into(),
            <HostState as wasmtime_wasi_http::WasiHttpView>::http,
        )
        .map_err(wasmtime_error)?;
        let mut offline_linker = linker.clone();
        http::add_refusing_handler(&mut offline_linker).map_err(wasmtime_error)?;
        wasmtime_wasi_http::p2::bindings::http::outgoing_handler::add_to_linker::<
            _,
            wasmtime_wasi_http::WasiHttp,
        >(
            &mut linker,
            <HostState as wasmtime_wasi_http::WasiHttpView>::http,
        )
        .map_err(wasmtime_error)?;
        let slots = Arc::new(Semaphore::new(config.max_concurrency as usize));
        let host_memory = HostMemoryPool::new(config.host_memory_budget);
        let live_memory = LiveMemory::new(config.live_memory_budget);
        let threads = threads::SandboxThreads::new(config.threads)?;
        Ok(Sandbox {
            engine,
            linker,
            offline_linker,
            config,
            plugins: RwLock::new(HashMap::new()),
            slots,
            host_memory,
            live_memory,
            threads,
        })
    }

    /// Compiles (or loads from cache), vets, links and describes a component, then registers it
    /// under the name and version it describes. Replaces an earlier load of the same version.
    /// Compiles (or loads from cache), vets, links and describes a component without
    /// registering it, so the caller can decide (e.g. refuse to shadow a built-in).
    pub async fn prepare(&self, wasm: &[u8], builtin: bool) -> Result<Prepared, LoadError> {
        if wasm.len() > self.config.max_component_bytes {
            return Err(LoadError::TooLarge {
                size: wasm.len(),
                limit: self.config.max_component_bytes,
            });
        }
        let digest = cache::digest(wasm);
        let component = cache::compile(
            &self.engine,
            self.config.cache_dir.as_deref(),
            wasm,
            &digest,
        )
        .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let mut wants_event = false;
        let mut sends_http = false;
        for (name, _) in component.component_type().imports(&self.engine) {
            if !GRANTED_IMPORT_PREFIXES.iter().any(|p| name.starts_with(p)) {
                return Err(LoadError::ForbiddenImport(name.to_string()));
            }
            wants_event |= name.starts_with("hookflow:plugin/event@");
            sends_http |= name.starts_with("wasi:http/outgoing-handler@");
        }
        let link = |linker: &Linker<HostState>| {
            let pre = linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
            PluginPre::new(pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))
        };
        let offline = link(&self.offline_linker)?;
        let online = if sends_http {
            Some(link(&self.linker)?)
        } else {
            None
        };
        // The epoch deadline stops a describe() that computes forever; one that waits in a host
        // call (a sleep) is cut off here, so an install or a start never hangs on it. It runs on
        // the sandbox threads, in a pool slot, like a step.
        let (mut occupied, _) = self.occupy(DESCRIBE_DEADLINE, &Grants::default()).await;
        let pre = offline.clone();
        let describing = async move {
            let store = &mut occupied.store;
            let plugin = pre.instantiate_async(&mut *store).await?;
            plugin.call_describe(&mut *store).await
        };
        let describing = tokio::time::timeout(DESCRIBE_DEADLINE + HOST_CALL_MARGIN, describing);
        let descriptor = self
            .threads
            .run(describing)
            .await
            .map_err(|e| LoadError::Describe(format!("{e}")))?
            .map_err(|_| {
                LoadError::Describe(format!(
                    "describe() did not answer within {} s",
                    DESCRIBE_DEADLINE.as_secs()
                ))
            })?
            .map_err(|e| LoadError::Describe(format!("{e:#}")))?;
        let input_schema: Value = serde_json::from_str(&descriptor.input_schema)
            .map_err(|e| LoadError::BadSchema(e.to_string()))?;
        if !input_schema.is_object() {
            return Err(LoadError::BadSchema("not a JSON object".into()));
        }
        let raw_inputs = raw_inputs(&input_schema);
        let info = PluginInfo {
            name: descriptor.name,
            version: descriptor.version,
            description: descriptor.description,
            input_schema,
            side_effects: descriptor.side_effects,
            digest,
            builtin,
            raw_inputs,
            wants_event,
        };
        Ok(Prepared(Arc::new(LoadedPlugin {
            info,
            offline,
            online,
        })))
    }

    /// Registers a prepared plugin under the name and version it describes, replacing an
    /// earlier registration of that version. Serves from the next step on.
    pub fn register(&self, prepared: Prepared) -> PluginInfo {
        let info = prepared.0.info.clone();
        let key = (info.name.clone(), info.version.clone());
        self.plugins
            .write()
            .expect("plugin map poisoned")
            .insert(key, prepared.0);
        info
    }

    /// Stops serving `name@version` when it is registered with `digest` (a built-in, or other
    /// bytes registered meanwhile under that version, stay), and deletes its compiled copy from
    /// the disk cache. Steps already running it finish on the instance they hold; its compiled
    /// code and linked instances are freed when the last of them ends.
    pub fn unload(&self, name: &str, version: &str, digest: &str) -> Option<PluginInfo> {
        let key = (name.to_string(), version.to_string());
        let removed = {
            let mut plugins = self.plugins.write().expect("plugin map poisoned");
            match plugins.get(&key) {
                Some(p) if p.info.digest == digest && !p.info.builtin => plugins.remove(&key)?,
                _ => return None,
            }
        };
        if let Some(dir) = &self.config.cache_dir {
            cache::forget(&self.engine, dir, digest);
        }
        Some(removed.info.clone())
    }

    /// [`Sandbox::prepare`] then [`Sandbox::register`].
    pub async fn load(&self, wasm: &[u8], builtin: bool) -> Result<PluginInfo, LoadError> {
        Ok(self.register(self.prepare(wasm, builtin).await?))
    }

    /// The plugin registered as `name@version`.
    pub fn plugin(&self, name: &str, version: &str) -> Option<PluginInfo> {
        self.lookup(name, version).map(|p| p.info.clone())
    }

    /// Every registered plugin, sorted by name then version.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        let mut all: Vec<PluginInfo> = self
            .plugins
            .read()
            .expect("plugin map poisoned")
            .values()
            .map(|p| p.info.clone())
            .collect();
        all.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        all
    }

    fn lookup(&self, name: &str, version: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .expect("plugin map poisoned")
            .get(&(name.to_string(), version.to_string()))
            .cloned()
    }

    /// Runs one step of `name@version` with `input` (JSON text) in a fresh store. Never panics
    /// or fails as a whole: every way a plugin can misbehave becomes a [`StepOutcome`].
    pub async fn run(
        &self,
        name: &str,
        version: &str,
        ctx: &StepContext,
        input: &str,
        timeout: Duration,
        grants: &Grants,
    ) -> StepReport {
        let Some(plugin) = self.lookup(name, version) else {
            return StepReport::failed(format!("plugin {name}@{version} is not installed"));
        };
        let (mut occupied, started) = self.occupy(timeout, grants).await;
        let pre = plugin.pre_for(grants).clone();
        let wit_ctx = WitRunContext {
            run_id: ctx.run_id.clone(),
            flow_id: ctx.flow_id.clone(),
            step_name: ctx.step_name.clone(),
            attempt: ctx.attempt,
            test_run: ctx.test_run,
        };
        let input = input.to_owned();
        // On the sandbox threads. Epochs stop guest code at the deadline; the outer timeout also
        // covers time spent in host calls (a guest sleeping), which epochs cannot interrupt. The
        // small margin lets the epoch path win for guest code, so its trap is reported with the
        // guest's logs.
        let call = async move {
            let store = &mut occupied.store;
            let result = tokio::time::timeout(timeout + HOST_CALL_MARGIN, async {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.call_run(&mut *store, &wit_ctx, &input).await
            })
            .await;
            (result, occupied)
        };
        let (result, mut occupied) = match self.threads.run(call).await {
            Ok(done) => done,
            Err(error) => return StepReport::failed(format!("the step's task ended: {error}")),
        };
        let store = &mut occupied.store;
        let outcome = match result {
            Err(_) => StepOutcome::TimedOut {
                after: started.elapsed(),
            },
            Ok(Ok(Ok(output))) => self.check_output(output),
            Ok(Ok(Err(error))) => StepOutcome::Failed {
                message: error.message,
                retryable: error.retryable,
            },
            Ok(Err(error)) => self.classify_trap(&error, store.data(), started.elapsed()),
        };
        if matches!(outcome, StepOutcome::TimedOut { .. }) {
            crate::metrics::recorded().sandbox_timed_out();
        }
        let state = store.data_mut();
        let logs = state.take_logs();
        let end_run = state.take_end_run();
        let refused_requests = state.take_refusals();
        let response = state.take_response();
        StepReport {
            outcome,
            logs,
            end_run,
            refused_requests,
            response,
            peak_memory_bytes: state.memory_peak(),
        }
    }

    /// Waits for a pool slot and for room in the live-memory budget, then makes a fresh store
    /// that must finish within `timeout` from now (waiting does not count); returns when it
    /// started.
    async fn occupy(&self, timeout: Duration, grants: &Grants) -> (Occupied, Instant) {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("sandbox semaphore closed");
        let admission = self.live_memory.admit().await;
        let started = Instant::now();
        let occupied = Occupied {
            store: self.new_store(started + timeout, grants, admission),
            _slot: slot,
        };
        (occupied, started)
    }

    fn check_output(&self, output: String) -> StepOutcome {
        if output.len() > self.config.max_output_bytes {
            return StepOutcome::Failed {
                message: format!(
                    "output is {} bytes, over the {}-byte limit",
                    output.len(),
                    self.config.max_output_bytes
                ),
                retryable: false,
            };
        }
        match serde_json::from_str(&output) {
            Ok(output) => StepOutcome::Succeeded { output },
            Err(e) => StepOutcome::Failed {
                message: format!("plugin returned invalid JSON: {e}"),
                retryable: false,
            },
        }
    }

    fn classify_trap(
        &self,
        error: &wasmtime::Error,
        state: &HostState,
        elapsed: Duration,
    ) -> StepOutcome {
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return StepOutcome::TimedOut { after: elapsed };
        }
        crate::metrics::recorded().sandbox_trapped(state.memory_limit_hit());
        // Over its host-memory budget: its host calls trapped on the refused table, or the
        // epoch callback stopped it.
        if let Some(exceeded) = state.host_memory_exceeded() {
            return StepOutcome::Failed {
                message: exceeded.message.clone(),
                retryable: exceeded.retryable,
            };
        }
        let trap = match error.downcast_ref::<Trap>() {
            Some(trap) => format!("plugin trapped: {trap}"),
            None => format!("plugin failed: {}", error.root_cause()),
        };
        let message = if state.memory_limit_hit() {
            format!(
                "plugin exceeded its memory limit of {} ({trap})",
                human_bytes(self.config.memory_limit)
            )
        } else {
            trap
        };
        StepOutcome::Failed {
            message,
            retryable: false,
        }
    }

    fn new_store(
        &self,
        deadline: Instant,
        grants: &Grants,
        admission: budget::Admission,
    ) -> Store<HostState> {
        let policy = HttpPolicy::new(grants.allowed_hosts.clone(), grants.allow_local);
        let state = HostState::new(
            MemoryLimits::new(self.config.memory_limit, admission),
            HostMemory::new(self.host_memory.clone(), self.config.host_memory_budget / 4),
            policy,
            grants.secrets.clone(),
            grants.mail.clone(),
            grants.memory.clone(),
            grants.event.clone(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s.limits());
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |store| {
            if let Some(exceeded) = store.data().host_memory_exceeded() {
                // Its host calls already trap; a guest that only computes stops here.
                return Err(wasmtime::Error::msg(exceeded.message.clone()));
            }
            if Instant::now() >= deadline {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                // Yield to tokio at each tick so a busy guest cannot starve the runtime's timers.
                Ok(wasmtime::UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        store
    }
}

/// The properties of an input schema marked `"x-hookflow-raw": true`.
fn raw_inputs(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, spec)| spec.get("x-hookflow-raw") == Some(&Value::Bool(true)))
        .map(|(name, _)| name.clone())
        .collect()
}

/// A step's store and the pool slot it occupies. Fields drop in declaration order: the store,
/// and the component instance in it, goes before the slot is given back, so the pooling
/// allocator (one component instance per slot) never sees more live instances than slots —
/// also when a cancelled step's task is dropped. Giving the slot back first let the next step
/// instantiate while the old instance lived ("maximum concurrent limit ... reached").
struct Occupied {
    store: Store<HostState>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

fn engine_config(config: &SandboxConfig, pooling: bool) -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true)
        .memory_init_cow(true)
        .max_wasm_stack(512 << 10);
    if pooling {
        // Core module instances one plugin instance may create. A Rust plugin creates 3; a
        // Python one (componentize-py links CPython, libc and the WASI adapter as separate
        // modules, plus shims) 38. The pool counts core instances, it does not reserve memory
        // for them, so the total is sized for every slot running a plugin that large.
        const CORE_INSTANCES_PER_PLUGIN: u32 = 64;
        let n = config.max_concurrency;
        let mut p = PoolingAllocationConfig::new();
        p.total_component_instances(n)
            .total_core_instances(CORE_INSTANCES_PER_PLUGIN * n)
            .max_core_instances_per_component(CORE_INSTANCES_PER_PLUGIN)
            .total_memories(2 * n)
            .total_tables(4 * n)
            .total_stacks(n)
            .max_memory_size(config.memory_limit.max(1 << 20))
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            .max_memories_per_component(4)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    c
}

/// Advances the engine's epoch every tick; stops when the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("hookflow-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn epoch ticker");
}

/// wasmtime 48 has its own error type; the rest of the server speaks anyhow.
fn wasmtime_error(error: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{error:#}")
}

fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}
