//! The `memory` host capability: a flow remembers keys across its runs ("first sign-in from
//! this IP?") and caches short-lived values (Auth0 Actions' `api.cache`). Durable in the store
//! for the server, shared by every process; in-process for local CLI runs.

use crate::secrets::Redactor;
use crate::store::{CacheEntry, CacheRefusal, DynStore, epoch_ms};
use async_trait::async_trait;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Longest key a plugin may remember or cache under.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest cached value.
pub const MAX_CACHE_VALUE_BYTES: usize = 16 << 10;
/// Live cache entries one flow may hold.
pub const MAX_CACHE_ENTRIES: u64 = 1000;
/// Lifetime of a cached value when none is given, and the longest allowed (Auth0's maximum).
pub const CACHE_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// Why a cache call failed, in the codes the WIT `cache-error` documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheError {
    /// `INVALID_ARGUMENT`, `QUOTA_EXCEEDED` or `UNAVAILABLE`.
    pub code: &'static str,
    pub message: String,
}

impl CacheError {
    fn invalid(message: String) -> CacheError {
        CacheError {
            code: "INVALID_ARGUMENT",
            message,
        }
    }

    fn unavailable() -> CacheError {
        CacheError {
            code: "UNAVAILABLE",
            message: "the flow cache is unavailable; try again".into(),
        }
    }
}

/// Where remembered keys and cached values live.
#[async_trait]
pub trait FlowMemory: Send + Sync {
    /// Records `key` for `flow_id` when `record` is set. Returns true when the key was not
    /// known before.
    async fn remember(&self, flow_id: &str, key: &str, record: bool) -> Result<bool, String>;

    /// The live cached value of `key`.
    async fn cache_get(&self, flow_id: &str, key: &str) -> Result<Option<CacheEntry>, CacheError>;

    /// Stores `entry` under `key`, refused when the flow's cache is full.
    async fn cache_set(
        &self,
        flow_id: &str,
        key: &str,
        entry: &CacheEntry,
    ) -> Result<(), CacheError>;

    /// Removes `key`; true when a live entry was removed.
    async fn cache_delete(&self, flow_id: &str, key: &str) -> Result<bool, CacheError>;
}

fn full(refusal: CacheRefusal) -> CacheError {
    let CacheRefusal::Full(limit) = refusal;
    CacheError {
        code: "QUOTA_EXCEEDED",
        message: format!("the flow's cache already holds {limit} live entries"),
    }
}

/// The server's memory: the `flow_memory` and `flow_cache` tables, shared by every process on
/// the database.
pub struct StoreMemory(pub DynStore);

fn store_failed(error: crate::store::StoreError, flow_id: &str) -> CacheError {
    tracing::error!(error = %error, flow_id, "the flow cache failed");
    CacheError::unavailable()
}

#[async_trait]
impl FlowMemory for StoreMemory {
    async fn remember(&self, flow_id: &str, key: &str, record: bool) -> Result<bool, String> {
        self.0
            .remember_key(flow_id, key, record)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, flow_id, "remembering a key failed");
                "the flow memory is unavailable; try again".to_string()
            })
    }

    async fn cache_get(&self, flow_id: &str, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        self.0
            .cache_get(flow_id, key)
            .await
            .map_err(|e| store_failed(e, flow_id))
    }

    async fn cache_set(
        &self,
        flow_id: &str,
        key: &str,
        entry: &CacheEntry,
    ) -> Result<(), CacheError> {
        self.0
            .cache_set(flow_id, key, entry, MAX_CACHE_ENTRIES)
            .await
            .map_err(|e| store_failed(e, flow_id))?
            .map_err(full)
    }

    async fn cache_delete(&self, flow_id: &str, key: &str) -> Result<bool, CacheError> {
        self.0
            .cache_delete(flow_id, key)
            .await
            .map_err(|e| store_failed(e, flow_id))
    }
}

/// Memory for one local `hookflow flow run`: forgotten when the command ends.
#[derive(Default)]
pub struct LocalMemory {
    keys: Mutex<HashSet<(String, String)>>,
    cache: Mutex<HashMap<(String, String), CacheEntry>>,
}

impl LocalMemory {
    fn live_cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), CacheEntry>> {
        let mut cache = self.cache.lock().expect("local cache poisoned");
        let now = epoch_ms();
        cache.retain(|_, entry| entry.expires_at > now);
        cache
    }
}

#[async_trait]
impl FlowMemory for LocalMemory {
    async fn remember(&self, flow_id: &str, key: &str, record: bool) -> Result<bool, String> {
        let mut keys = self.keys.lock().expect("local memory poisoned");
        let entry = (flow_id.to_string(), key.to_string());
        Ok(if record {
            keys.insert(entry)
        } else {
            !keys.contains(&entry)
        })
    }

    async fn cache_get(&self, flow_id: &str, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        let cache = self.live_cache();
        Ok(cache.get(&(flow_id.to_string(), key.to_string())).cloned())
    }

    async fn cache_set(
        &self,
        flow_id: &str,
        key: &str,
        entry: &CacheEntry,
    ) -> Result<(), CacheError> {
        let mut cache = self.live_cache();
        let id = (flow_id.to_string(), key.to_string());
        let others = cache
            .keys()
            .filter(|(flow, k)| flow == flow_id && *k != id.1)
            .count() as u64;
        if others >= MAX_CACHE_ENTRIES {
            return Err(full(CacheRefusal::Full(MAX_CACHE_ENTRIES)));
        }
        cache.insert(id, entry.clone());
        Ok(())
    }

    async fn cache_delete(&self, flow_id: &str, key: &str) -> Result<bool, CacheError> {
        let mut cache = self.live_cache();
        Ok(cache
            .remove(&(flow_id.to_string(), key.to_string()))
            .is_some())
    }
}

/// What one step may remember: the flow it belongs to, and whether to record (not in tests).
#[derive(Clone)]
pub struct MemoryGrant {
    pub memory: Arc<dyn FlowMemory>,
    pub flow_id: String,
    pub record: bool,
    /// Cache writes of a step that may not record (a test run): kept for the rest of the step
    /// only, so the code under test reads back what it wrote and the real cache stays as it
    /// was. `None` marks a deleted key.
    pub scratch: Arc<Mutex<HashMap<String, Option<CacheEntry>>>>,
    /// The secrets the step holds, redacted from what it writes to the flow's memory as from
    /// its output: the cache and the remembered keys are shared with the flow's other steps
    /// (and its later runs), which may not hold them. `None` for a step without secrets.
    redactor: Option<Arc<Redactor>>,
}

impl MemoryGrant {
    /// A grant for one step of `flow_id`.
    pub fn new(memory: Arc<dyn FlowMemory>, flow_id: &str, record: bool) -> MemoryGrant {
        MemoryGrant {
            memory,
            flow_id: flow_id.to_string(),
            record,
            scratch: Arc::default(),
            redactor: None,
        }
    }

    /// This grant for a step holding the secrets `redactor` redacts: what it caches (values and
    /// keys) and the keys it remembers are stored redacted, so the secret stays with the step.
    /// Keys are redacted the same way on every call, so the step still finds what it stored.
    pub fn redacting(mut self, redactor: &Redactor) -> MemoryGrant {
        self.redactor = (!redactor.is_empty()).then(|| Arc::new(redactor.clone()));
        self
    }

    /// `text` with the step's secrets redacted.
    fn redacted<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.redactor {
            Some(redactor) => {
                let mut owned = text.to_string();
                redactor.redact_text(&mut owned);
                if owned == text {
                    Cow::Borrowed(text)
                } else {
                    Cow::Owned(owned)
                }
            }
            None => Cow::Borrowed(text),
        }
    }

    /// Checks the key and asks the memory.
    pub async fn remember(&self, key: &str) -> Result<bool, String> {
        check_key(key)?;
        let key = self.redacted(key);
        self.memory.remember(&self.flow_id, &key, self.record).await
    }

    /// The live cached value of `key`.
    pub async fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        check_key(key).map_err(CacheError::invalid)?;
        let key = self.redacted(key);
        if let Some(local) = self.scratch().get(key.as_ref()) {
            return Ok(local.clone().filter(|e| e.expires_at > epoch_ms()));
        }
        self.memory.cache_get(&self.flow_id, &key).await
    }

    /// Stores `value` until `expires_at` (ms since the epoch) or for `ttl_ms`; with neither for
    /// [`CACHE_TTL_MS`], and never longer. Returns what was stored.
    pub async fn cache_set(
        &self,
        key: &str,
        value: &str,
        ttl_ms: Option<u64>,
        expires_at: Option<i64>,
    ) -> Result<CacheEntry, CacheError> {
        check_key(key).map_err(CacheError::invalid)?;
        if value.len() > MAX_CACHE_VALUE_BYTES {
            return Err(CacheError::invalid(format!(
                "a cached value may hold at most {MAX_CACHE_VALUE_BYTES} bytes, got {}",
                value.len()
            )));
        }
        let now = epoch_ms();
        let latest = now.saturating_add(CACHE_TTL_MS);
        let wanted = match (expires_at, ttl_ms) {
            (Some(at), _) => at,
            (None, Some(ttl)) => now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            (None, None) => latest,
        };
        if wanted <= now {
            return Err(CacheError::invalid(
                "the lifetime of a cached value must end in the future".into(),
            ));
        }
        let entry = CacheEntry {
            value: self.redacted(value).into_owned(),
            expires_at: wanted.min(latest),
        };
        let key = self.redacted(key);
        if self.record {
            self.memory.cache_set(&self.flow_id, &key, &entry).await?;
        } else {
            self.scratch().insert(key.into_owned(), Some(entry.clone()));
        }
        Ok(entry)
    }

    /// Removes `key`; true when a live entry was removed.
    pub async fn cache_delete(&self, key: &str) -> Result<bool, CacheError> {
        check_key(key).map_err(CacheError::invalid)?;
        if self.record {
            return self
                .memory
                .cache_delete(&self.flow_id, &self.redacted(key))
                .await;
        }
        let existed = self.cache_get(key).await?.is_some();
        self.scratch().insert(self.redacted(key).into_owned(), None);
        Ok(existed)
    }

    fn scratch(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<CacheEntry>>> {
        self.scratch.lock().expect("cache scratch poisoned")
    }
}

/// A key of 1 to [`MAX_KEY_BYTES`] bytes.
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "a memory key must be 1 to {MAX_KEY_BYTES} bytes, got {}",
            key.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_sighting_is_reported_once_and_test_runs_record_nothing() {
        let memory: Arc<dyn FlowMemory> = Arc::new(LocalMemory::default());
        let peek = MemoryGrant::new(memory.clone(), "f", false);
        let live = MemoryGrant {
            record: true,
            ..peek.clone()
        };
        assert_eq!(peek.remember("ana|203.0.113.7").await, Ok(true));
        assert_eq!(live.remember("ana|203.0.113.7").await, Ok(true));
        assert_eq!(live.remember("ana|203.0.113.7").await, Ok(false));
        assert_eq!(peek.remember("ana|203.0.113.7").await, Ok(false));
        assert!(live.remember("").await.is_err());
        assert!(live.remember(&"x".repeat(513)).await.is_err());
    }

    #[tokio::test]
    async fn the_cache_keeps_values_until_they_expire_and_test_runs_write_aside() {
        let memory: Arc<dyn FlowMemory> = Arc::new(LocalMemory::default());
        let live = MemoryGrant::new(memory.clone(), "f", true);
        assert_eq!(live.cache_get("token").await, Ok(None));
        let stored = live.cache_set("token", "abc", None, None).await.unwrap();
        let lifetime = stored.expires_at - epoch_ms();
        assert!(lifetime > CACHE_TTL_MS - 5_000 && lifetime <= CACHE_TTL_MS);
        assert_eq!(live.cache_get("token").await.unwrap(), Some(stored));
        // Longer than a day is cut to a day; a lifetime in the past is refused.
        let capped = live
            .cache_set("long", "v", Some(u64::MAX), None)
            .await
            .unwrap();
        assert!(capped.expires_at <= epoch_ms() + CACHE_TTL_MS);
        let past = live.cache_set("old", "v", None, Some(1)).await.unwrap_err();
        assert_eq!(past.code, "INVALID_ARGUMENT");
        let big = "x".repeat(MAX_CACHE_VALUE_BYTES + 1);
        assert_eq!(
            live.cache_set("big", &big, None, None)
                .await
                .unwrap_err()
                .code,
            "INVALID_ARGUMENT"
        );

        // A test run reads the real cache, writes only to its scratch.
        let test = MemoryGrant::new(memory.clone(), "f", false);
        assert_eq!(test.cache_get("token").await.unwrap().unwrap().value, "abc");
        test.cache_set("token", "changed", Some(60_000), None)
            .await
            .unwrap();
        assert_eq!(
            test.cache_get("token").await.unwrap().unwrap().value,
            "changed"
        );
        assert!(test.cache_delete("token").await.unwrap());
        assert_eq!(test.cache_get("token").await.unwrap(), None);
        assert_eq!(live.cache_get("token").await.unwrap().unwrap().value, "abc");

        assert!(live.cache_delete("token").await.unwrap());
        assert!(!live.cache_delete("token").await.unwrap());
        assert_eq!(live.cache_get("token").await, Ok(None));
    }

    /// A step holding a secret cannot pass it to the flow's other steps through the cache or
    /// the remembered keys: what it writes is redacted like its output.
    #[tokio::test]
    async fn a_step_holding_secrets_writes_them_redacted() {
        use base64::Engine as _;
        let secret = "tok-cache-s3cret";
        let memory: Arc<dyn FlowMemory> = Arc::new(LocalMemory::default());
        let holder =
            MemoryGrant::new(memory.clone(), "f", true).redacting(&Redactor::new([secret]));
        let other = MemoryGrant::new(memory.clone(), "f", true);
        let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
        let stored = holder
            .cache_set("copy", &format!("Bearer {secret} / {encoded}"), None, None)
            .await
            .unwrap();
        assert_eq!(stored.value, "Bearer **REDACTED** / **REDACTED**");
        let seen = other.cache_get("copy").await.unwrap().unwrap().value;
        assert!(!seen.contains(secret) && !seen.contains(&encoded), "{seen}");

        // A key made of the secret is stored redacted; the holder still finds it by the secret.
        holder
            .cache_set(&format!("k-{secret}"), "v", None, None)
            .await
            .unwrap();
        assert_eq!(
            holder
                .cache_get(&format!("k-{secret}"))
                .await
                .unwrap()
                .unwrap()
                .value,
            "v"
        );
        assert_eq!(other.cache_get(&format!("k-{secret}")).await.unwrap(), None);
        assert!(other.cache_get("k-**REDACTED**").await.unwrap().is_some());
        assert!(holder.cache_delete(&format!("k-{secret}")).await.unwrap());
        assert_eq!(holder.remember(&format!("ip|{secret}")).await, Ok(true));
        assert_eq!(other.remember("ip|**REDACTED**").await, Ok(false));

        // A test run's scratch copy gets the same.
        let test = MemoryGrant::new(memory, "f", false).redacting(&Redactor::new([secret]));
        let scratch = test.cache_set("copy", secret, None, None).await.unwrap();
        assert_eq!(scratch.value, "**REDACTED**");
        // Without secrets nothing changes.
        assert!(
            MemoryGrant::new(Arc::new(LocalMemory::default()), "f", true)
                .redacting(&Redactor::default())
                .redactor
                .is_none()
        );
    }
}
