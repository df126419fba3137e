//! Opening a connection with the flags and pragmas of its role.
//!
//! Durability (`synchronous`) in WAL mode:
//! - `FULL`: the WAL is synced at every commit, so a transaction that committed survives power
//!   loss or an OS crash.
//! - `NORMAL`: the WAL is synced only at checkpoints. A committed transaction survives a crash of
//!   the process (the WAL is in the OS page cache), but on power loss or an OS crash the last
//!   transactions before it may roll back. The database is never corrupted either way.

use crate::store::{StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Prepared statements kept per connection: every statement the store runs, with room to spare,
/// so the hot path never parses SQL.
const STATEMENT_CACHE: usize = 256;
/// How long a statement waits for a lock another connection holds (a checkpoint, an external
/// `sqlite3` shell) before failing as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connection is for: decides its open flags and pragmas.
#[derive(Debug, Clone, Copy)]
pub(super) enum Role {
    /// The only connection that writes; `synchronous_full` picks `FULL` over `NORMAL`.
    Writer { synchronous_full: bool },
    /// A read-only connection: SQLite itself refuses writes on it.
    Reader,
}

/// Creates a missing database file readable and writable by this user only: it holds trigger
/// credentials and every event. SQLite gives its WAL and shared-memory files the same mode. A
/// file an older version left readable by others (and its WAL and shared-memory files) is made
/// owner-only.
fn create_owner_only(path: &Path) -> StoreResult<()> {
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(
                |e| StoreError::Unavailable(format!("making {} owner-only: {e}", path.display())),
            )?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!(
            "creating {}: {e}",
            path.display()
        ))),
    }
}

/// Opens `path` for `role`. The writer creates the file and switches it to WAL mode (a property
/// of the file, which readers then share); readers never create or change anything.
pub(super) fn open(path: &Path, role: Role) -> StoreResult<Connection> {
    // NO_MUTEX: each connection is owned by one thread, so SQLite's own locking is overhead.
    let flags = match role {
        Role::Writer { .. } => {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        }
        Role::Reader => OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    };
    if matches!(role, Role::Writer { .. }) {
        create_owner_only(path)?;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(BUSY_TIMEOUT)?;
    match role {
        Role::Writer { synchronous_full } => {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Unavailable(format!(
                    "cannot switch {} to WAL mode (the journal mode stays {mode})",
                    path.display()
                )));
            }
            let synchronous = if synchronous_full { "FULL" } else { "NORMAL" };
            // The writer keeps the large page cache: it touches the indexes of every table.
            conn.execute_batch(&format!(
                "PRAGMA synchronous = {synchronous};
                 PRAGMA foreign_keys = ON;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA cache_size = -16000;"
            ))?;
        }
        Role::Reader => {
            // Readers serve page-sized API queries: a small cache each keeps the resident size in
            // check.
            conn.execute_batch(
                "PRAGMA foreign_keys = ON;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA cache_size = -4000;",
            )?;
        }
    }
    Ok(conn)
}
