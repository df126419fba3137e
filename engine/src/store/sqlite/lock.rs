//! One hookflow process per database file.
//!
//! SQLite itself would let a second process open the file and write through its own writer, and
//! the engine's guarantees (one writer, no row locks, leases requeued at start-up) would silently
//! break. A lock file next to the database makes the second process refuse to start instead. It
//! is keyed on the canonical path, so every spelling of the same file (`./data/x.db`,
//! `data//x.db`, an absolute path, a symlinked directory) takes the same lock.

use crate::store::{StoreError, StoreResult};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// The one path every spelling of `path` resolves to: the canonical parent directory (created if
/// missing) joined with the file name, or, when the file is itself a symlink, its target. The
/// file need not exist yet.
pub(super) fn canonical_path(path: &Path) -> StoreResult<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        StoreError::Unavailable(format!("{} does not name a database file", path.display()))
    })?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // Owner-only, like the data directory the server creates: it holds the database.
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(parent).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot create the directory {}: {e}",
            parent.display()
        ))
    })?;
    let dir = fs::canonicalize(parent).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot resolve the directory {}: {e}",
            parent.display()
        ))
    })?;
    let joined = dir.join(name);
    let is_symlink = fs::symlink_metadata(&joined).is_ok_and(|m| m.file_type().is_symlink());
    if is_symlink && let Ok(target) = fs::canonicalize(&joined) {
        return Ok(target);
    }
    Ok(joined)
}

/// `<db>.lock`.
fn lock_path(db: &Path) -> PathBuf {
    let mut path = OsString::from(db.as_os_str());
    path.push(".lock");
    PathBuf::from(path)
}

/// Takes the exclusive lock for the database at `db` (a [`canonical_path`]). The lock lasts as
/// long as the returned file is open; the file itself is left in place (deleting a lock file
/// would let a third process lock a new file while the second still holds the old one).
pub(super) fn acquire(db: &Path) -> StoreResult<File> {
    let path = lock_path(db);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "another hookflow process is using the database {} (lock {} is held)",
            db.display(),
            path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}
