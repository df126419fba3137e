//! Flows as the running engine sees them: validated, parsed once and cached. Saving goes through
//! here so a flow is checked against the installed plugins before it is stored, and the cache is
//! refreshed on every save. On SQLite this process is the only writer, so the cache is exact;
//! on a shared PostgreSQL database another process may save a flow, so cached entries are
//! re-read after [`SHARED_CACHE_TTL`].

use crate::flow::{self, Flow, Problem, Problems};
use crate::secrets::SecretBox;
use crate::store::{Actor, Cursor, DynStore, FlowRecord, FlowState, Page, Scope, StoreError};
use crate::wasm::Sandbox;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Why a flow could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("the flow is invalid")]
    Invalid(Problems),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The published version of a flow, parsed, with its lifecycle state.
#[derive(Debug)]
pub struct ActiveFlow {
    pub record: FlowRecord,
    pub flow: Arc<Flow>,
    /// Whether it is on and which draft is pending; webhooks and schedules serve only an
    /// enabled flow's published version ([`FlowRegistry::serving`]).
    pub state: FlowState,
}

/// How long a cached flow is trusted when other processes share the database: a change saved
/// elsewhere takes effect here within this time.
pub const SHARED_CACHE_TTL: Duration = Duration::from_secs(1);

/// Read-through cache of parsed flows over the store.
pub struct FlowRegistry {
    store: DynStore,
    sandbox: Arc<Sandbox>,
    /// Seals literal trigger credentials before they are stored and opens them when a stored
    /// flow is parsed: the database holds them encrypted, the parsed flows in clear.
    sbox: Arc<SecretBox>,
    current: RwLock<HashMap<String, (Arc<ActiveFlow>, Instant)>>,
    versions: RwLock<HashMap<(String, i64), Arc<Flow>>>,
    /// Flows with a cron trigger; `None` after any save until the scheduler reloads it.
    scheduled: RwLock<Option<(Vec<Arc<ActiveFlow>>, Instant)>>,
    /// `Some(ttl)` when other processes may change flows behind this cache's back.
    ttl: Option<Duration>,
    /// Flows this process deleted: a read that raced the deletion must not cache them again.
    deleted: RwLock<std::collections::HashSet<String>>,
    /// Counts this process's writes. Enabling or disabling keeps the version, so a read that
    /// started before such a write may only fill the cache if no write happened meanwhile;
    /// otherwise a slow read could bring back the state before the write.
    writes: AtomicU64,
}

/// Deleted ids remembered at most (ids are never reused; beyond this the oldest knowledge goes,
/// which only reopens a race a TTL or the next save closes anyway).
const MAX_DELETED: usize = 100_000;

impl FlowRegistry {
    pub fn new(store: DynStore, sandbox: Arc<Sandbox>, sbox: Arc<SecretBox>) -> FlowRegistry {
        FlowRegistry {
            store,
            sandbox,
            sbox,
            current: RwLock::default(),
            versions: RwLock::default(),
            scheduled: RwLock::default(),
            ttl: None,
            deleted: RwLock::default(),
            writes: AtomicU64::new(0),
        }
    }

    /// Makes cached flows expire after `ttl`, for a database other processes write too.
    pub fn shared(mut self, ttl: Duration) -> FlowRegistry {
        self.ttl = Some(ttl);
        self
    }

    fn fresh(&self, cached_at: Instant) -> bool {
        self.ttl.is_none_or(|ttl| cached_at.elapsed() < ttl)
    }

    /// Validates a flow definition: structure, templates, and that every plugin it uses is
    /// installed. Every problem is reported with its path.
    pub fn check(&self, definition: Value) -> Result<Flow, Problems> {
        let flow = flow::flow_from_value(definition)?;
        let problems = plugin_problems(&flow, &self.sandbox);
        if problems.is_empty() {
            Ok(flow)
        } else {
            Err(Problems(problems))
        }
    }

    /// Validates a definition to be saved as flow `id` and gives the text to store: its
    /// literal credential sealed for this flow. A sealed credential the definition comes with
    /// (the API restores the stored one for the mask) must open for this flow, and is kept when
    /// unchanged.
    fn prepare(&self, id: &str, mut definition: Value) -> Result<(Flow, Value), SaveError> {
        let kept = self
            .sbox
            .open_credential(id, &mut definition)
            .map_err(|e| {
                SaveError::Invalid(Problems(vec![Problem {
                    path: format!("trigger.auth.{}", e.field),
                    message: "an encrypted credential that does not belong to this flow; send the \
                          credential itself or {{secrets.NAME}}"
                        .into(),
                }]))
            })?;
        let flow = self.check(definition).map_err(SaveError::Invalid)?;
        let mut stored = flow.to_value();
        self.sbox.seal_credential(id, &mut stored, kept.as_deref());
        Ok((flow, stored))
    }

    /// Seals the literal trigger credentials that flows and flow versions stored before they
    /// were encrypted at rest. Idempotent (sealed rows are not read again), so every start runs
    /// it; returns how many rows it sealed. A flow's rows holding the same credential get the
    /// same sealed text, as saves write it, so the next save's `changes` see no trigger change.
    pub async fn seal_stored_credentials(&self) -> Result<u64, StoreError> {
        let sbox = self.sbox.clone();
        let sealed: std::sync::Mutex<HashMap<String, String>> = Default::default();
        self.store
            .rewrite_flow_definitions(
                "%\"auth\"%",
                crate::secrets::SEALED_CREDENTIAL,
                Arc::new(move |id, definition| {
                    let mut sealed = sealed.lock().expect("sealing pass poisoned");
                    let kept = sealed.get(id).map(String::as_str);
                    if !sbox.seal_credential(id, definition, kept) {
                        return false;
                    }
                    if let Some((_, text)) = flow::model::literal_credential_mut(definition) {
                        sealed.insert(id.to_string(), text.clone());
                    }
                    true
                }),
            )
            .await
    }

    /// Validates and stores a new flow.
    pub async fn create(
        &self,
        actor: &Actor,
        scope: &Scope,
        definition: Value,
    ) -> Result<Arc<ActiveFlow>, SaveError> {
        let id = crate::store::new_id();
        let (flow, stored) = self.prepare(&id, definition)?;
        let record = self
            .store
            .create_flow_as(actor, scope, &id, &flow.name, &stored)
            .await?;
        let state = FlowState {
            enabled: true,
            draft_version: None,
        };
        Ok(self.saved(record, flow, state))
    }

    /// Validates, stores and publishes a new version of a flow (a pending draft is superseded).
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        definition: Value,
    ) -> Result<Arc<ActiveFlow>, SaveError> {
        let (flow, stored) = self.prepare(id, definition)?;
        self.store
            .update_flow(actor, id, &flow.name, &stored)
            .await?;
        self.reload(id)
            .await?
            .ok_or_else(|| SaveError::Store(StoreError::NotFound(format!("flow {id}"))))
    }

    /// Validates and stores a new version as a draft: the published version keeps serving.
    /// Returns the flow as it serves now and the draft's version number.
    pub async fn save_draft(
        &self,
        actor: &Actor,
        id: &str,
        definition: Value,
    ) -> Result<(Arc<ActiveFlow>, i64), SaveError> {
        let (flow, stored) = self.prepare(id, definition)?;
        let (_, draft) = self.store.save_flow_draft(actor, id, &stored).await?;
        self.versions
            .write()
            .expect("flow cache poisoned")
            .insert((id.to_string(), draft), Arc::new(flow));
        let active = self.reload(id).await?;
        active
            .map(|a| (a, draft))
            .ok_or_else(|| SaveError::Store(StoreError::NotFound(format!("flow {id}"))))
    }

    /// Publishes a flow's pending draft, checked against the installed plugins again (one may
    /// have been removed since the draft was saved).
    pub async fn publish(&self, actor: &Actor, id: &str) -> Result<Arc<ActiveFlow>, SaveError> {
        let Some((_, state)) = self.store.get_flow_with_state(id).await? else {
            return Err(StoreError::NotFound(format!("flow {id}")).into());
        };
        let Some(draft) = state.draft_version else {
            return Err(StoreError::Conflict(format!("flow {id} has no draft to publish")).into());
        };
        if let Some(record) = self.store.get_flow_version(id, draft).await? {
            self.check(self.opened(&record)?)
                .map_err(SaveError::Invalid)?;
        }
        self.store.publish_flow(actor, id).await?;
        self.reload(id)
            .await?
            .ok_or_else(|| SaveError::Store(StoreError::NotFound(format!("flow {id}"))))
    }

    /// Turns a flow on or off; its webhook and schedule follow at once in this process.
    pub async fn set_enabled(
        &self,
        actor: &Actor,
        id: &str,
        enabled: bool,
    ) -> Result<Option<Arc<ActiveFlow>>, StoreError> {
        if self
            .store
            .set_flow_enabled(actor, id, enabled)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        self.reload(id).await
    }

    /// Reads a flow after this process wrote it and caches what it read (a write's own read is
    /// the newest state, whatever was cached).
    async fn reload(&self, id: &str) -> Result<Option<Arc<ActiveFlow>>, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let Some((record, state)) = self.store.get_flow_with_state(id).await? else {
            self.current
                .write()
                .expect("flow cache poisoned")
                .remove(id);
            return Ok(None);
        };
        let flow = self.parse_stored(&record)?;
        Ok(Some(self.saved(record, flow, state)))
    }

    /// Deletes a flow; its webhook stops accepting events at once.
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<bool, StoreError> {
        let deleted = self.store.delete_flow(actor, id).await?;
        {
            let mut tombstones = self.deleted.write().expect("flow cache poisoned");
            if tombstones.len() >= MAX_DELETED {
                tombstones.clear();
            }
            tombstones.insert(id.to_string());
        }
        self.current
            .write()
            .expect("flow cache poisoned")
            .remove(id);
        Ok(deleted)
    }

    /// The published version of a flow, enabled or not, from cache or store.
    pub async fn current(&self, id: &str) -> Result<Option<Arc<ActiveFlow>>, StoreError> {
        if let Some((active, cached_at)) = self.current.read().expect("flow cache poisoned").get(id)
            && self.fresh(*cached_at)
        {
            return Ok(Some(active.clone()));
        }
        let writes = self.writes.load(Ordering::SeqCst);
        let Some((record, state)) = self.store.get_flow_with_state(id).await? else {
            return Ok(None);
        };
        if self.is_deleted(id) {
            // Read before the deletion committed, answered after it: the flow is gone.
            return Ok(None);
        }
        let flow = self.parse_stored(&record)?;
        Ok(Some(self.remember(record, flow, state, writes)))
    }

    /// The flow a webhook or schedule may run: its published version, and only while it is
    /// enabled. `None` for a disabled flow as for a missing one.
    pub async fn serving(&self, id: &str) -> Result<Option<Arc<ActiveFlow>>, StoreError> {
        Ok(self.current(id).await?.filter(|a| a.state.enabled))
    }

    /// A specific version of a flow (what a queued run was accepted with).
    pub async fn version(&self, id: &str, version: i64) -> Result<Option<Arc<Flow>>, StoreError> {
        let key = (id.to_string(), version);
        if let Some(flow) = self.versions.read().expect("flow cache poisoned").get(&key) {
            return Ok(Some(flow.clone()));
        }
        let Some(record) = self.store.get_flow_version(id, version).await? else {
            return Ok(None);
        };
        let flow = Arc::new(self.parse_stored(&record)?);
        self.versions
            .write()
            .expect("flow cache poisoned")
            .insert(key, flow.clone());
        Ok(Some(flow))
    }

    /// Flows, newest first; `only` limits them to those projects.
    pub async fn list(
        &self,
        limit: u32,
        cursor: Option<Cursor>,
        only: Option<Vec<String>>,
    ) -> Result<Page<FlowRecord>, StoreError> {
        self.store.list_flows(limit, cursor, only).await
    }

    /// Every current flow triggered by a cron schedule.
    pub async fn scheduled(&self) -> Result<Vec<Arc<ActiveFlow>>, StoreError> {
        if let Some((list, cached_at)) =
            self.scheduled.read().expect("flow cache poisoned").as_ref()
            && self.fresh(*cached_at)
        {
            return Ok(list.clone());
        }
        let mut list = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.store.list_flows(500, cursor, None).await?;
            for record in page.data {
                if record
                    .definition
                    .pointer("/trigger/type")
                    .and_then(Value::as_str)
                    == Some("schedule")
                    && let Some(active) = self.serving(&record.id).await?
                {
                    list.push(active);
                }
            }
            match page.next.as_deref().and_then(Cursor::decode) {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        *self.scheduled.write().expect("flow cache poisoned") =
            Some((list.clone(), Instant::now()));
        Ok(list)
    }

    /// Caches what a write of this process just stored.
    fn saved(&self, record: FlowRecord, flow: Flow, state: FlowState) -> Arc<ActiveFlow> {
        let writes = self.writes.load(Ordering::SeqCst);
        self.remember(record, flow, state, writes)
    }

    /// Caches a flow read or saved when `self.writes` was `writes`.
    fn remember(
        &self,
        record: FlowRecord,
        flow: Flow,
        state: FlowState,
        writes: u64,
    ) -> Arc<ActiveFlow> {
        *self.scheduled.write().expect("flow cache poisoned") = None;
        let flow = Arc::new(flow);
        let key = (record.id.clone(), record.version);
        self.versions
            .write()
            .expect("flow cache poisoned")
            .insert(key, flow.clone());
        let active = Arc::new(ActiveFlow {
            record,
            flow,
            state,
        });
        let mut current = self.current.write().expect("flow cache poisoned");
        // Only a newer version replaces what is cached — the same version only when no write
        // of this process happened since it was read (an enable or disable keeps the version) —
        // and nothing brings back a deleted flow: reads and saves finish in any order.
        let unchanged = self.writes.load(Ordering::SeqCst) == writes;
        let newer = current.get(&active.record.id).is_none_or(|(cached, _)| {
            cached.record.version < active.record.version
                || (cached.record.version == active.record.version && unchanged)
        });
        if newer && !self.is_deleted(&active.record.id) {
            current.insert(active.record.id.clone(), (active.clone(), Instant::now()));
        }
        active
    }

    /// A stored definition with its credential opened.
    fn opened(&self, record: &FlowRecord) -> Result<Value, StoreError> {
        let mut definition = record.definition.clone();
        self.sbox
            .open_credential(&record.id, &mut definition)
            .map_err(|e| {
                StoreError::Corrupt(format!(
                    "stored flow {} v{}: {e}",
                    record.id, record.version
                ))
            })?;
        Ok(definition)
    }

    /// A stored flow, parsed with its credential opened (what webhooks are verified against).
    fn parse_stored(&self, record: &FlowRecord) -> Result<Flow, StoreError> {
        flow::flow_from_value(self.opened(record)?).map_err(|problems| {
            StoreError::Corrupt(format!(
                "stored flow {} v{} is invalid: {problems}",
                record.id, record.version
            ))
        })
    }

    fn is_deleted(&self, id: &str) -> bool {
        self.deleted
            .read()
            .expect("flow cache poisoned")
            .contains(id)
    }
}

/// Problems for every action step whose plugin is not installed.
pub fn plugin_problems(flow: &Flow, sandbox: &Sandbox) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (path, step) in flow.action_steps_with_paths() {
        if let Some(info) = sandbox.plugin(&step.plugin.name, &step.plugin.version) {
            let plugin = step.plugin.to_string();
            input_problems(
                &format!("{path}.input"),
                &step.input,
                &info.input_schema,
                &plugin,
                &mut problems,
            );
            if step.plugin.name == flow::script::JAVASCRIPT_PLUGIN
                && let Some(code) = step.input.get("code").and_then(Value::as_str)
                && let Err(problem) = flow::script::check(code)
            {
                problems.push(Problem {
                    path: format!("{path}.input.code"),
                    message: problem.0,
                });
            }
        } else {
            let installed: Vec<String> = sandbox
                .plugins()
                .into_iter()
                .filter(|p| p.name == step.plugin.name)
                .map(|p| format!("{}@{}", p.name, p.version))
                .collect();
            let hint = if installed.is_empty() {
                "no plugin of that name is installed".to_string()
            } else {
                format!("installed versions: {}", installed.join(", "))
            };
            problems.push(Problem {
                path: format!("{path}.plugin"),
                message: format!("plugin {} is not installed ({hint})", step.plugin),
            });
        }
    }
    problems
}

/// Checks a step's input against the top level of its plugin's JSON Schema: required fields,
/// unknown fields when `additionalProperties` is false, and the type and `enum` of literal
/// values. Values holding templates are only known at run time and are not type-checked.
fn input_problems(
    path: &str,
    input: &serde_json::Map<String, Value>,
    schema: &Value,
    plugin: &str,
    problems: &mut Vec<Problem>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let required = schema.get("required").and_then(Value::as_array);
    for name in required.into_iter().flatten().filter_map(Value::as_str) {
        if !input.contains_key(name) {
            problems.push(Problem {
                path: format!("{path}.{name}"),
                message: format!("required by plugin {plugin}"),
            });
        }
    }
    for (key, value) in input {
        let Some(spec) = properties.and_then(|p| p.get(key)) else {
            if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
                let accepted: Vec<&str> = properties
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                problems.push(Problem {
                    path: format!("{path}.{key}"),
                    message: format!(
                        "not accepted by plugin {plugin} (accepted: {})",
                        accepted.join(", ")
                    ),
                });
            }
            continue;
        };
        if value.as_str().is_some_and(|s| s.contains("{{")) {
            continue;
        }
        if let Some(expected) = spec.get("type").and_then(Value::as_str)
            && !json_type_matches(expected, value)
        {
            problems.push(Problem {
                path: format!("{path}.{key}"),
                message: format!("must be of type {expected} for plugin {plugin}"),
            });
        }
        if let Some(allowed) = spec.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            problems.push(Problem {
                path: format!("{path}.{key}"),
                message: format!("must be one of {}", list.join(", ")),
            });
        }
    }
}

fn json_type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => true,
    }
}

/// A registry over a fresh SQLite store in a temporary directory (kept alive by the first
/// value), with a sandbox that has no plugins: for unit tests of the registry and its users.
#[cfg(test)]
pub(crate) async fn test_registry() -> (tempfile::TempDir, DynStore, FlowRegistry) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    let store = crate::store::open(
        &crate::store::DatabaseUrl::parse(&url).unwrap(),
        &crate::store::OpenOptions::default(),
    )
    .await
    .unwrap()
    .store;
    let sandbox = Arc::new(
        Sandbox::new(crate::wasm::SandboxConfig {
            max_concurrency: 1,
            ..crate::wasm::SandboxConfig::default()
        })
        .unwrap(),
    );
    let sbox = Arc::new(SecretBox::load(None, dir.path()).unwrap());
    let registry = FlowRegistry::new(store.clone(), sandbox, sbox);
    (dir, store, registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Regression (hardening I): a late read cannot put an older version back in the cache,
    /// nor resurrect a deleted flow.
    #[tokio::test]
    async fn late_reads_never_replace_newer_versions_or_undo_deletions() {
        let (_dir, store, registry) = test_registry().await;
        let actor = Actor::system();
        let scope = Scope {
            platform_id: "default".into(),
            project_id: "default".into(),
        };
        let definition =
            |name: &str| json!({"name": name, "trigger": {"type": "webhook"}, "steps": []});
        let v1 = registry
            .create(&actor, &scope, definition("one"))
            .await
            .unwrap();
        let id = v1.record.id.clone();
        registry
            .update(&actor, &id, definition("two"))
            .await
            .unwrap();
        // A read of version 1 that finishes after the save of version 2.
        let stale = store.get_flow_version(&id, 1).await.unwrap().unwrap();
        registry.remember(stale, v1.flow.as_ref().clone(), v1.state, 0);
        assert_eq!(
            registry.current(&id).await.unwrap().unwrap().record.version,
            2
        );

        // A read that began before a disable (same version, enabled) and finishes after it.
        let writes = registry.writes.load(Ordering::SeqCst);
        let (before, state) = store.get_flow_with_state(&id).await.unwrap().unwrap();
        assert!(state.enabled);
        let disabled = registry.set_enabled(&actor, &id, false).await.unwrap();
        assert!(!disabled.unwrap().state.enabled);
        let flow = registry.parse_stored(&before).unwrap();
        registry.remember(before, flow, state, writes);
        assert!(
            registry.serving(&id).await.unwrap().is_none(),
            "a late read does not turn a disabled flow back on"
        );
        assert!(!registry.current(&id).await.unwrap().unwrap().state.enabled);
        registry.set_enabled(&actor, &id, true).await.unwrap();
        assert!(registry.serving(&id).await.unwrap().is_some());

        // A draft does not serve; publishing it does.
        let (served, draft) = registry
            .save_draft(&actor, &id, definition("three"))
            .await
            .unwrap();
        assert_eq!((served.record.version, draft), (2, 3));
        assert_eq!(
            registry.serving(&id).await.unwrap().unwrap().flow.name,
            "two"
        );
        let published = registry.publish(&actor, &id).await.unwrap();
        assert_eq!(published.record.version, 3);
        assert_eq!(
            registry.serving(&id).await.unwrap().unwrap().flow.name,
            "three"
        );

        let late = store.get_flow(&id).await.unwrap().unwrap();
        assert!(registry.delete(&actor, &id).await.unwrap());
        let flow = registry.parse_stored(&late).unwrap();
        registry.remember(late, flow, state, 0);
        assert!(
            registry.current(&id).await.unwrap().is_none(),
            "deleted stays deleted"
        );
    }

    /// A literal webhook credential is stored sealed for its flow, in the flow and in every
    /// version, and the parsed flow holds it in clear; rows written before are sealed once.
    #[tokio::test]
    async fn literal_credentials_are_stored_sealed_and_parsed_in_clear() {
        let (_dir, store, registry) = test_registry().await;
        let actor = Actor::system();
        let scope = store.default_scope().await.unwrap();
        let bearer = |token: &str| {
            json!({"name": "hook", "trigger": {"type": "webhook",
                "auth": {"type": "bearer", "token": token}}, "steps": []})
        };
        let token = "tok-at-rest-1234";
        let active = registry
            .create(&actor, &scope, bearer(token))
            .await
            .unwrap();
        let id = active.record.id.clone();
        let credential = |flow: &Flow| match &flow.trigger {
            flow::model::Trigger::Webhook { auth, .. } => auth.credential().map(String::from),
            _ => None,
        };
        assert_eq!(credential(&active.flow).as_deref(), Some(token));
        let stored = store.get_flow(&id).await.unwrap().unwrap().definition;
        assert!(!stored.to_string().contains(token), "{stored}");

        // Saving back what was stored (the API restores it for the mask) keeps it unchanged.
        let saved = registry.update(&actor, &id, stored.clone()).await.unwrap();
        assert_eq!(saved.record.definition, stored);
        assert_eq!(credential(&saved.flow).as_deref(), Some(token));
        for version in [1, 2] {
            let v = store.get_flow_version(&id, version).await.unwrap().unwrap();
            assert!(!v.definition.to_string().contains(token));
        }
        // Sealed for this flow only.
        let other = registry.create(&actor, &scope, stored.clone()).await;
        assert!(
            matches!(&other, Err(SaveError::Invalid(p)) if p.0[0].path == "trigger.auth.token"),
            "{other:?}"
        );

        // A flow stored in clear before: sealed by the start-up pass, once.
        let old = store
            .create_flow(&actor, &scope, "old", &bearer("tok-written-before"))
            .await
            .unwrap();
        assert_eq!(registry.seal_stored_credentials().await.unwrap(), 2);
        assert_eq!(registry.seal_stored_credentials().await.unwrap(), 0);
        let sealed = store.get_flow(&old.id).await.unwrap().unwrap();
        assert!(!sealed.definition.to_string().contains("tok-written-before"));
        let version = store.get_flow_version(&old.id, 1).await.unwrap().unwrap();
        assert_eq!(
            version.definition, sealed.definition,
            "one sealed text per credential"
        );
        let served = registry.current(&old.id).await.unwrap().unwrap();
        assert_eq!(
            credential(&served.flow).as_deref(),
            Some("tok-written-before")
        );
    }
}
