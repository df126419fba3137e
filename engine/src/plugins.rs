//! The plugins a process serves: the built-ins, `*.wasm` files from the plugin directory, and
//! components installed through the API (vetted, compiled, stored with their audit event, and
//! loaded by every process sharing the database).

use crate::builtins::BUILTIN_PLUGINS;
use crate::store::DynStore;
use crate::wasm::{Sandbox, SandboxConfig};
use anyhow::Context;
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

/// Loads every stored plugin this sandbox does not serve yet (or serves with another digest):
/// at start, and on a shared database periodically, so an install through one process reaches
/// the others. A component that no longer loads is logged and skipped.
pub async fn sync_plugins(sandbox: &Sandbox, store: &DynStore) -> anyhow::Result<usize> {
    let mut loaded = 0;
    for (name, version, digest) in store.plugin_digests().await? {
        match sandbox.plugin(&name, &version) {
            Some(current) if current.digest == digest || current.builtin => continue,
            _ => {}
        }
        let Some(stored) = store.get_plugin(&name, &version).await? else {
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
    Ok(loaded)
}
