//! What the JavaScript runtime needs from the world outside the component.
//!
//! The runtime talks to the host only through [`Host`], so the unit tests can run it natively
//! against a fake that records what the script did, while the component uses [`SdkHost`], a thin
//! layer over the SDK and its generated bindings.

use hookflow_plugin_sdk::http::{Request, Response};
use hookflow_plugin_sdk::{CacheEntry, CacheError, Level};

/// The host capabilities a step's script can reach, one method per WIT function it uses.
pub trait Host {
    /// Records a line in the run trace (already capped by the caller).
    fn log(&self, level: Level, message: &str);
    /// Names of the secrets granted to the step that are set.
    fn secret_names(&self) -> Vec<String>;
    /// A granted secret's value; `None` for anything not granted.
    fn secret(&self, name: &str) -> Option<String>;
    /// Reads the flow's cache (`memory.cache-get`).
    fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>, CacheError>;
    /// Writes the flow's cache (`memory.cache-set`); the host enforces sizes and lifetimes.
    fn cache_set(
        &self,
        key: &str,
        value: &str,
        ttl_ms: Option<u64>,
        expires_at: Option<i64>,
    ) -> Result<CacheEntry, CacheError>;
    /// Removes a cache entry (`memory.cache-delete`).
    fn cache_delete(&self, key: &str) -> Result<bool, CacheError>;
    /// The trigger event as CloudEvents JSON text (`event.cloud-event`).
    fn cloud_event(&self) -> String;
    /// Sends one HTTP request and returns the whole response, whatever its status. The error
    /// text names the destination's scheme and host (the SDK's messages do).
    fn fetch(&self, request: &Request) -> Result<Response, String>;
}

/// The real host: the SDK's wrappers over the component's imports.
#[derive(Debug, Default, Clone, Copy)]
pub struct SdkHost;

impl Host for SdkHost {
    fn log(&self, level: Level, message: &str) {
        hookflow_plugin_sdk::log(level, message);
    }

    fn secret_names(&self) -> Vec<String> {
        hookflow_plugin_sdk::secret_names()
    }

    fn secret(&self, name: &str) -> Option<String> {
        hookflow_plugin_sdk::secret(name)
    }

    fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        hookflow_plugin_sdk::cache_get(key)
    }

    fn cache_set(
        &self,
        key: &str,
        value: &str,
        ttl_ms: Option<u64>,
        expires_at: Option<i64>,
    ) -> Result<CacheEntry, CacheError> {
        hookflow_plugin_sdk::cache_set(key, value, ttl_ms, expires_at)
    }

    fn cache_delete(&self, key: &str) -> Result<bool, CacheError> {
        hookflow_plugin_sdk::cache_delete(key)
    }

    fn cloud_event(&self) -> String {
        hookflow_plugin_sdk::cloud_event()
    }

    fn fetch(&self, request: &Request) -> Result<Response, String> {
        hookflow_plugin_sdk::http::send(request).map_err(|e| e.message)
    }
}
