//! Per-step host state: the WASI context (nothing granted), the memory limiter and the log
//! capture behind the `hookflow:plugin/log` import.

use super::budget::{Admission, BudgetExceeded, HostMemory};
use super::hookflow::plugin::log::{Host as LogHost, Level};
use super::http::HttpPolicy;
use crate::mail::{MailGrant, MailRequest};
use crate::memory::MemoryGrant;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::types::HostOutgoingRequest;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Log lines kept per step; later lines are counted but dropped.
const MAX_LOG_LINES: usize = 200;
/// Longest kept log message.
const MAX_LOG_LINE_BYTES: usize = 4096;
/// Bytes of stdout+stderr kept per step. Writes past this fail inside the guest.
const STDIO_CAPACITY: usize = 64 << 10;
/// Host objects (header maps, requests, streams, pollables, ...) one step may hold at once,
/// whatever their size; real plugins hold a few dozen. The bytes they hold are limited by the
/// step's [`HostMemory`] account.
const MAX_HOST_RESOURCES: usize = 4096;
/// Bytes one header map a plugin builds may hold (names and values): what the host-memory
/// account charges per entry. Real request headers are a few KiB.
const MAX_FIELDS_BYTES: usize = super::budget::ENTRY_BYTES;

/// Severity of a plugin log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// One line a plugin logged (or printed), kept in the step's trace.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// Caps linear memory and remembers whether the cap was hit, so a guest that aborts on a failed
/// allocation is reported as out of memory rather than as a mysterious trap.
pub struct MemoryLimits {
    max_bytes: usize,
    hit: bool,
    /// The largest linear memory the step grew to (what its instance actually used).
    peak: usize,
    /// The step's share of the process's live linear memory.
    admission: Admission,
}

impl MemoryLimits {
    pub fn new(max_bytes: usize, admission: Admission) -> Self {
        MemoryLimits {
            max_bytes,
            hit: false,
            peak: 0,
            admission,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_bytes;
        self.hit |= !allowed;
        if allowed {
            self.peak = self.peak.max(desired);
            self.admission.grew(desired.saturating_sub(current));
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Everything a single step's store holds. Dropped with the store after the step.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MemoryLimits,
    host_memory: HostMemory,
    logs: Vec<LogLine>,
    dropped_logs: usize,
    stdio: MemoryOutputPipe,
    http: WasiHttpCtx,
    http_policy: HttpPolicy,
    /// Granted secrets only: anything else reads as absent.
    secrets: HashMap<String, String>,
    end_run: Option<String>,
    mail: MailGrant,
    memory: Option<MemoryGrant>,
    /// The run's trigger event as CloudEvent JSON, for plugins that import `event`.
    event: Option<Arc<str>>,
    response: Option<SyncResponse>,
}

/// The HTTP answer a plugin set for a `/sync` webhook call (the `respond` plugin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SyncResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Headers a `respond` call may not set: the server frames the response itself.
const SERVER_OWNED_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];
/// Headers one response may carry.
const MAX_RESPONSE_HEADERS: usize = 50;
/// Largest response body a plugin may set.
const MAX_RESPONSE_BODY_BYTES: usize = 1 << 20;

impl SyncResponse {
    /// Checks a response a plugin asked for, saying what is wrong with a bad one.
    fn check(self) -> Result<SyncResponse, String> {
        if !(200..=599).contains(&self.status) {
            return Err(format!("status {} is outside 200..=599", self.status));
        }
        if self.headers.len() > MAX_RESPONSE_HEADERS {
            return Err(format!(
                "{} headers, over the limit of {MAX_RESPONSE_HEADERS}",
                self.headers.len()
            ));
        }
        if self.body.len() > MAX_RESPONSE_BODY_BYTES {
            return Err(format!(
                "body is {} bytes, over the limit of {MAX_RESPONSE_BODY_BYTES}",
                self.body.len()
            ));
        }
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if ::http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                return Err(format!("{name:?} is not a valid header name"));
            }
            if SERVER_OWNED_HEADERS.contains(&lower.as_str()) {
                return Err(format!("header {name} is set by the server"));
            }
            if ::http::HeaderValue::from_str(value).is_err() {
                return Err(format!("header {name} has an invalid value"));
            }
        }
        Ok(self)
    }
}

impl HostState {
    pub fn new(
        limits: MemoryLimits,
        host_memory: HostMemory,
        http_policy: HttpPolicy,
        secrets: HashMap<String, String>,
        mail: MailGrant,
        memory: Option<MemoryGrant>,
        event: Option<Arc<str>>,
    ) -> Self {
        let stdio = MemoryOutputPipe::new(STDIO_CAPACITY);
        // No preopens, no environment, no arguments, no sockets: the builder grants nothing
        // unless asked, and we ask only for captured stdout/stderr. (Outbound HTTP is the
        // separate, policed `wasi:http` capability.)
        let wasi = WasiCtx::builder()
            .stdout(stdio.clone())
            .stderr(stdio.clone())
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HOST_RESOURCES);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_FIELDS_BYTES);
        HostState {
            wasi,
            table,
            limits,
            host_memory,
            logs: Vec::new(),
            dropped_logs: 0,
            stdio,
            http,
            http_policy,
            secrets,
            end_run: None,
            mail,
            memory,
            event,
            response: None,
        }
    }

    pub fn limits(&mut self) -> &mut MemoryLimits {
        &mut self.limits
    }

    pub fn memory_limit_hit(&self) -> bool {
        self.limits.hit
    }

    /// The largest linear memory the step grew to, in bytes.
    pub fn memory_peak(&self) -> usize {
        self.limits.peak
    }

    /// Why the step was stopped for what it made the host hold, once it was.
    pub fn host_memory_exceeded(&self) -> Option<&BudgetExceeded> {
        self.host_memory.exceeded()
    }

    fn push_log(&mut self, level: LogLevel, mut message: String) {
        if self.logs.len() >= MAX_LOG_LINES {
            self.dropped_logs += 1;
            return;
        }
        if message.len() > MAX_LOG_LINE_BYTES {
            let mut cut = MAX_LOG_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        self.logs.push(LogLine { level, message });
    }

    /// The reason the plugin asked to end the run, if it did.
    pub fn take_end_run(&mut self) -> Option<String> {
        self.end_run.take()
    }

    /// The `/sync` response the plugin set, if it did.
    pub fn take_response(&mut self) -> Option<SyncResponse> {
        self.response.take()
    }

    /// HTTP requests the policy refused, with the reason.
    pub fn take_refusals(&self) -> Vec<String> {
        self.http_policy.take_refusals()
    }

    /// Refuses a request of a step without `allowedHosts` (see
    /// [`super::http::add_refusing_handler`]): frees the request and its options, records the
    /// refusal and returns its message.
    pub fn refuse_request(
        &mut self,
        request: Resource<HostOutgoingRequest>,
        options: Option<Resource<wasmtime_wasi_http::RequestOptions>>,
    ) -> wasmtime::Result<String> {
        let request = self.table.delete(request)?;
        if let Some(options) = options {
            self.table.delete(options)?;
        }
        let target =
            super::http::request_target(request.scheme.as_ref(), request.authority.as_deref());
        Ok(self.http_policy.refuse_without_hosts(&target))
    }

    /// The step's log: host `log` calls, then anything printed to stdout/stderr.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        let printed = self.stdio.contents();
        if !printed.is_empty() {
            let text = String::from_utf8_lossy(&printed).into_owned();
            for line in text.lines().filter(|l| !l.is_empty()) {
                self.push_log(LogLevel::Info, line.to_string());
            }
        }
        if self.dropped_logs > 0 {
            let note = format!(
                "{} more log lines dropped (limit {MAX_LOG_LINES})",
                self.dropped_logs
            );
            self.logs.push(LogLine {
                level: LogLevel::Warn,
                message: note,
            });
            self.dropped_logs = 0;
        }
        std::mem::take(&mut self.logs)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // Every `wasi:*` host call gets its table here: the step's account sees each one.
        WasiCtxView {
            ctx: &mut self.wasi,
            table: self.host_memory.table_for_call(&mut self.table),
        }
    }
}

impl LogHost for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.push_log(level, message);
        Ok(())
    }
}

impl super::hookflow::plugin::types::Host for HostState {}

impl super::hookflow::plugin::secrets::Host for HostState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.secrets.get(&name).cloned())
    }

    async fn names(&mut self) -> wasmtime::Result<Vec<String>> {
        let mut names: Vec<String> = self.secrets.keys().cloned().collect();
        names.sort();
        Ok(names)
    }
}

impl super::hookflow::plugin::control::Host for HostState {
    async fn end_run(&mut self, reason: String) -> wasmtime::Result<()> {
        let mut reason = reason;
        reason.truncate(MAX_LOG_LINE_BYTES);
        self.end_run = Some(reason);
        Ok(())
    }

    async fn respond(
        &mut self,
        response: super::hookflow::plugin::control::HttpResponse,
    ) -> wasmtime::Result<Result<(), String>> {
        let response = SyncResponse {
            status: response.status,
            headers: response.headers,
            body: response.body,
        };
        Ok(response.check().map(|checked| {
            self.response = Some(checked);
        }))
    }
}

impl super::hookflow::plugin::memory::Host for HostState {
    async fn remember(&mut self, key: String) -> wasmtime::Result<Result<bool, String>> {
        Ok(match &self.memory {
            Some(memory) => memory.remember(&key).await,
            None => Err("no flow memory is available here".into()),
        })
    }

    async fn cache_get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<WitCacheEntry>, WitCacheError>> {
        Ok(match &self.memory {
            Some(memory) => memory
                .cache_get(&key)
                .await
                .map(|entry| entry.map(wit_entry))
                .map_err(wit_cache_error),
            None => Err(no_cache()),
        })
    }

    async fn cache_set(
        &mut self,
        key: String,
        value: String,
        ttl_ms: Option<u64>,
        expires_at: Option<i64>,
    ) -> wasmtime::Result<Result<WitCacheEntry, WitCacheError>> {
        Ok(match &self.memory {
            Some(memory) => memory
                .cache_set(&key, &value, ttl_ms, expires_at)
                .await
                .map(wit_entry)
                .map_err(wit_cache_error),
            None => Err(no_cache()),
        })
    }

    async fn cache_delete(&mut self, key: String) -> wasmtime::Result<Result<bool, WitCacheError>> {
        Ok(match &self.memory {
            Some(memory) => memory.cache_delete(&key).await.map_err(wit_cache_error),
            None => Err(no_cache()),
        })
    }
}

use super::hookflow::plugin::memory::{CacheEntry as WitCacheEntry, CacheError as WitCacheError};

fn wit_entry(entry: crate::store::CacheEntry) -> WitCacheEntry {
    WitCacheEntry {
        value: entry.value,
        expires_at: entry.expires_at,
    }
}

fn wit_cache_error(error: crate::memory::CacheError) -> WitCacheError {
    WitCacheError {
        code: error.code.to_string(),
        message: error.message,
    }
}

fn no_cache() -> WitCacheError {
    WitCacheError {
        code: "UNAVAILABLE".into(),
        message: "no flow cache is available here".into(),
    }
}

impl super::hookflow::plugin::event::Host for HostState {
    async fn cloud_event(&mut self) -> wasmtime::Result<String> {
        Ok(self.event.as_deref().unwrap_or("null").to_string())
    }
}

impl super::hookflow::plugin::mail::Host for HostState {
    async fn send(
        &mut self,
        message: super::hookflow::plugin::mail::Message,
    ) -> wasmtime::Result<Result<String, super::hookflow::plugin::types::StepError>> {
        let Some(mailer) = self.mail.mailer.clone() else {
            return Ok(Err(super::hookflow::plugin::types::StepError {
                message: "e-mail is not configured on this server (set HOOKFLOW_SMTP_URL)".into(),
                retryable: false,
            }));
        };
        let request = MailRequest {
            from: message.from,
            to: message.to,
            cc: message.cc,
            reply_to: message.reply_to,
            subject: message.subject,
            text: message.text,
            html: message.html,
        };
        let result = mailer.send(&request, &self.mail.allowed_recipients).await;
        Ok(
            result.map_err(|e| super::hookflow::plugin::types::StepError {
                message: e.message,
                retryable: e.retryable,
            }),
        )
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: self.host_memory.table_for_call(&mut self.table),
            hooks: &mut self.http_policy,
        }
    }
}
