//! The `memory` host capability: a flow remembers keys across its runs ("first sign-in from
//! this IP?"). Durable in the store for the server; in-process for local CLI runs.

use crate::store::DynStore;
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Longest key a plugin may remember.
pub const MAX_KEY_BYTES: usize = 512;

/// Where remembered keys live.
#[async_trait]
pub trait FlowMemory: Send + Sync {
    /// Records `key` for `flow_id` when `record` is set. Returns true when the key was not
    /// known before.
    async fn remember(&self, flow_id: &str, key: &str, record: bool) -> Result<bool, String>;
}

/// The server's memory: the `flow_memory` table, shared by every process on the database.
pub struct StoreMemory(pub DynStore);

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
}

/// Memory for one local `hookflow flow run`: forgotten when the command ends.
#[derive(Default)]
pub struct LocalMemory(Mutex<HashSet<(String, String)>>);

#[async_trait]
impl FlowMemory for LocalMemory {
    async fn remember(&self, flow_id: &str, key: &str, record: bool) -> Result<bool, String> {
        let mut keys = self.0.lock().expect("local memory poisoned");
        let entry = (flow_id.to_string(), key.to_string());
        Ok(if record {
            keys.insert(entry)
        } else {
            !keys.contains(&entry)
        })
    }
}

/// What one step may remember: the flow it belongs to, and whether to record (not in tests).
#[derive(Clone)]
pub struct MemoryGrant {
    pub memory: Arc<dyn FlowMemory>,
    pub flow_id: String,
    pub record: bool,
}

impl MemoryGrant {
    /// Checks the key and asks the memory.
    pub async fn remember(&self, key: &str) -> Result<bool, String> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(format!(
                "a memory key must be 1 to {MAX_KEY_BYTES} bytes, got {}",
                key.len()
            ));
        }
        self.memory.remember(&self.flow_id, key, self.record).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_sighting_is_reported_once_and_test_runs_record_nothing() {
        let memory: Arc<dyn FlowMemory> = Arc::new(LocalMemory::default());
        let peek = MemoryGrant {
            memory: memory.clone(),
            flow_id: "f".into(),
            record: false,
        };
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
}
