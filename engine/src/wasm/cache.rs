//! Compiled-component cache on disk. Compiling a component takes tens of milliseconds; loading
//! a cached one a fraction of a millisecond. Entries are keyed by the component's SHA-256 and the
//! engine's compatibility hash (wasmtime version + settings), so a stale entry is never loaded.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Hex SHA-256 of the component bytes.
pub fn digest(wasm: &[u8]) -> String {
    let hash = Sha256::digest(wasm);
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn engine_key(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Compiles `wasm`, going through the cache in `dir` when given. A cache that cannot be read or
/// written is only a slower start, never an error.
pub fn compile(
    engine: &Engine,
    dir: Option<&Path>,
    wasm: &[u8],
    digest: &str,
) -> wasmtime::Result<Component> {
    let Some(dir) = dir else {
        return Component::new(engine, wasm);
    };
    let path = entry(engine, dir, digest);
    if path.exists() {
        // SAFETY: the file was written by this process family from `Component::serialize` under
        // a name that includes the engine's compatibility hash; the directory is ours.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "ignoring unreadable compiled component")
            }
        }
    }
    let component = Component::new(engine, wasm)?;
    if let Err(error) = write_atomically(dir, &path, &component) {
        tracing::warn!(%error, path = %path.display(), "could not cache compiled component");
        return Ok(component);
    }
    // Serve the file-backed copy, exactly as a later start will: the freshly compiled one keeps
    // its code and metadata in anonymous memory.
    // SAFETY: as above; written just now.
    match unsafe { Component::deserialize_file(engine, &path) } {
        Ok(mapped) => Ok(mapped),
        Err(_) => Ok(component),
    }
}

/// Where the compiled copy of the component with `digest` is kept in `dir`.
fn entry(engine: &Engine, dir: &Path, digest: &str) -> std::path::PathBuf {
    dir.join(format!("{digest}-{}.cwasm", engine_key(engine)))
}

/// Deletes the compiled copy of a removed component, so its disk space is returned and nothing
/// compiled from it outlives the removal. A copy that is not there is fine; one that cannot be
/// deleted is only logged (it is never served without its component being installed again).
pub fn forget(engine: &Engine, dir: &Path, digest: &str) {
    let path = entry(engine, dir, digest);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "could not delete a removed plugin's compiled copy")
        }
    }
}

fn write_atomically(dir: &Path, path: &Path, component: &Component) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = component
        .serialize()
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
