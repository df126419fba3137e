//! The plugins a process serves: the built-ins, `*.wasm` files from the plugin directory, and
//! components installed through the API (vetted, compiled, stored with their audit event, and
//! loaded by every process sharing the database; removed the same way once no flow uses them).

use crate::builtins::BUILTIN_PLUGINS;
use crate::store::{DynStore, PluginRemoval, PluginUser};
use crate::wasm::{Sandbox, SandboxConfig};
use anyhow::Context;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The sandbox with the built-in plugins and any `*.wasm` in `extra_dir` loaded.
pub async fn sandbox_with_plugins(
    cache_dir: Option<PathBuf>,
    memory_limit: usize,
    concurrency: u32,
    extra: &[PathBuf],
) -> anyhow::Result<Sandbox> {
    let config = SandboxConfig {
        cache_dir,
        memory_limit,
        max_concurrency: concurrency,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config)?;
    for (name, wasm) in BUILTIN_PLUGINS {
        sandbox
            .load(wasm, true)
            .await
            .with_context(|| format!("loading built-in plugin {name}"))?;
    }
    for path in extra {
        let wasm =
            std::fs::read(path).with_context(|| format!("reading plugin {}", path.display()))?;
        let info = sandbox
            .load(&wasm, false)
            .await
            .with_context(|| format!("loading plugin {}", path.display()))?;
        tracing::info!(plugin = %format!("{}@{}", info.name, info.version), path = %path.display(), "plugin loaded");
    }
    Ok(sandbox)
}

/// Where local CLI commands (`flow validate`, `flow run`, `generate`) cache compiled components,
/// so only the first call pays for compiling the built-ins: `HOOKFLOW_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/hookflow`, else `~/.cache/hookflow`. `None` (compile every time) when none
/// of them is set.
pub fn user_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HOOKFLOW_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("hookflow")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("hookflow")))
}

/// `*.wasm` files in a directory (none when it does not exist).
pub fn wasm_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading plugin directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    files.sort();
    Ok(files)
}

/// Why a plugin could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Load(#[from] crate::wasm::LoadError),
    #[error("{0} is a built-in plugin; install it under another name or version")]
    Builtin(String),
    /// Installed versions never change: other bytes need another version.
    #[error(
        "{0} is installed already with other bytes: an installed version never changes, so install these under a new version"
    )]
    Exists(String),
    #[error("saving the plugin failed: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// A new `name@version`.
    New,
    /// The same bytes were installed already: nothing changed, no event recorded.
    Unchanged,
}

/// Vets, compiles and registers a component, and stores it (with its `plugin.installed` audit
/// event, in one transaction) so every restart and every process serves it. Serves here
/// immediately; other versions stay side by side. Installed versions are immutable: a flow
/// that names `name@version` must always run the same code, so other bytes under a version
/// this process serves or the store holds are refused ([`InstallError::Exists`]); the same
/// bytes again are [`Installed::Unchanged`].
pub async fn install_plugin(
    sandbox: &Sandbox,
    store: &DynStore,
    actor: &crate::store::Actor,
    wasm: &[u8],
) -> Result<(crate::wasm::PluginInfo, Installed), InstallError> {
    let prepared = sandbox.prepare(wasm, false).await?;
    let probe = prepared.info().clone();
    if sandbox
        .plugin(&probe.name, &probe.version)
        .is_some_and(|p| p.builtin)
    {
        return Err(InstallError::Builtin(format!(
            "{}@{}",
            probe.name, probe.version
        )));
    }
    let label = format!("{}@{}", probe.name, probe.version);
    // Served here (the plugin directory, or an earlier install), or stored by any process.
    let served = sandbox
        .plugin(&probe.name, &probe.version)
        .map(|p| p.digest);
    let stored = store
        .get_plugin(&probe.name, &probe.version)
        .await?
        .map(|p| p.digest);
    if served.iter().chain(&stored).any(|d| *d != probe.digest) {
        return Err(InstallError::Exists(label));
    }
    if stored.is_some() {
        // The same bytes again: nothing to store, no second event.
        return Ok((sandbox.register(prepared), Installed::Unchanged));
    }
    let scope = store.default_scope().await?;
    let data = serde_json::json!({"plugin": {"name": probe.name, "version": probe.version, "digest": probe.digest}});
    let draft = crate::store::AuditDraft::new(
        &scope.platform_id,
        Some(&scope.project_id),
        actor,
        crate::store::AuditAction::PluginInstalled,
        data,
    );
    let stored = crate::store::StoredPlugin {
        name: probe.name.clone(),
        version: probe.version.clone(),
        digest: probe.digest.clone(),
        component: wasm.to_vec(),
    };
    // Two installs racing with different bytes: the store keeps the first.
    store
        .save_plugin(&stored, draft)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => InstallError::Exists(label),
            other => InstallError::Store(other),
        })?;
    Ok((sandbox.register(prepared), Installed::New))
}

/// Why a plugin version could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("plugin {0} is not installed")]
    NotFound(String),
    #[error("{0} is a built-in plugin: it ships with the server and cannot be removed")]
    Builtin(String),
    #[error(
        "{0} is loaded from the server's plugin directory, not installed through the API: delete its file there and restart the server"
    )]
    Directory(String),
    /// Flows run it: removing it would break their next run or publish.
    #[error("{}", in_use(.0, .1))]
    InUse(String, Vec<PluginUser>),
    #[error("removing the plugin failed: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The refusal's one line: every flow that uses the version, and what to do.
fn in_use(label: &str, users: &[PluginUser]) -> String {
    let flows: Vec<String> = users
        .iter()
        .map(|u| {
            let which = if u.draft { "draft" } else { "published" };
            format!(
                "{:?} ({}, {which} version {})",
                u.flow_name, u.flow_id, u.version
            )
        })
        .collect();
    format!(
        "{label} is used by {}: {}; change those flows to another version (or delete them) first. \
         Older versions in a flow's history do not count: a test run of one of them would fail \
         naming the missing plugin",
        if users.len() == 1 { "a flow" } else { "flows" },
        flows.join(", ")
    )
}

/// Removes an installed plugin version that no flow uses: deletes the stored component with its
/// `plugin.removed` audit event (refused while a flow's published version or pending draft names
/// it, decided in the store's transaction), then stops serving it here and deletes its compiled
/// copy; other processes unload it on their next [`PluginSync::run`], which the store's
/// notification starts at once. Built-ins and plugin-directory files are not removable here:
/// they come back with every start. Answers the removed component's digest.
pub async fn remove_plugin(
    sandbox: &Sandbox,
    store: &DynStore,
    actor: &crate::store::Actor,
    name: &str,
    version: &str,
) -> Result<String, RemoveError> {
    let label = format!("{name}@{version}");
    let served = sandbox.plugin(name, version);
    if served.as_ref().is_some_and(|p| p.builtin) {
        return Err(RemoveError::Builtin(label));
    }
    let stored = store
        .plugin_digests()
        .await?
        .into_iter()
        .find(|(n, v, _)| n == name && v == version);
    let Some((_, _, digest)) = stored else {
        return Err(match served {
            Some(_) => RemoveError::Directory(label),
            None => RemoveError::NotFound(label),
        });
    };
    let scope = store.default_scope().await?;
    let draft = crate::store::AuditDraft::new(
        &scope.platform_id,
        Some(&scope.project_id),
        actor,
        crate::store::AuditAction::PluginRemoved,
        serde_json::json!({"plugin": {"name": name, "version": version, "digest": digest}}),
    );
    match store.remove_plugin(name, version, &digest, draft).await? {
        PluginRemoval::Removed => {
            sandbox.unload(name, version, &digest);
            tracing::info!(plugin = %label, "plugin removed");
            Ok(digest)
        }
        // Removed (or installed again with other bytes) by someone else meanwhile.
        PluginRemoval::NotFound => Err(RemoveError::NotFound(label)),
        PluginRemoval::InUse(users) => Err(RemoveError::InUse(label, users)),
    }
}

/// Keeps a process's sandbox in step with the stored plugins: loads what was installed
/// (through any process) and unloads what was removed. At start, and on a shared database
/// whenever a `hookflow_plugins` notification arrives and periodically.
pub struct PluginSync {
    /// Non-built-in plugins served before the first sync: the plugin directory's files, which
    /// are served whether or not the store has them.
    directory: HashSet<(String, String)>,
}

impl PluginSync {
    /// Takes the plugins `sandbox` serves now, other than built-ins, as the plugin directory's;
    /// call it before the first [`PluginSync::run`].
    pub fn new(sandbox: &Sandbox) -> PluginSync {
        PluginSync {
            directory: sandbox
                .plugins()
                .into_iter()
                .filter(|p| !p.builtin)
                .map(|p| (p.name, p.version))
                .collect(),
        }
    }

    /// Loads every stored plugin this sandbox does not serve yet (or serves with another
    /// digest), and unloads every plugin it serves from the store that the store no longer
    /// has. A component that no longer loads is logged and skipped. Answers how many were
    /// loaded and unloaded.
    pub async fn run(&self, sandbox: &Sandbox, store: &DynStore) -> anyhow::Result<(usize, usize)> {
        // Taken before the store is read: an install saves before it registers, so a plugin
        // served here already and missing from the store after was removed (not installed
        // after the read).
        let served = sandbox.plugins();
        let stored = store.plugin_digests().await?;
        let mut loaded = 0;
        for (name, version, digest) in &stored {
            match sandbox.plugin(name, version) {
                Some(current) if current.digest == *digest || current.builtin => continue,
                _ => {}
            }
            let Some(stored) = store.get_plugin(name, version).await? else {
                continue;
            };
            match sandbox.load(&stored.component, false).await {
                Ok(_) => {
                    loaded += 1;
                    tracing::info!(plugin = %format!("{name}@{version}"), "stored plugin loaded");
                }
                Err(error) => {
                    tracing::error!(plugin = %format!("{name}@{version}"), %error, "stored plugin does not load; skipped");
                }
            }
        }
        let mut unloaded = 0;
        for plugin in served {
            let key = (plugin.name, plugin.version);
            if plugin.builtin
                || self.directory.contains(&key)
                || stored.iter().any(|(n, v, _)| (n, v) == (&key.0, &key.1))
            {
                continue;
            }
            if sandbox.unload(&key.0, &key.1, &plugin.digest).is_some() {
                unloaded += 1;
                tracing::info!(plugin = %format!("{}@{}", key.0, key.1), "removed plugin unloaded");
            }
        }
        Ok((loaded, unloaded))
    }
}
