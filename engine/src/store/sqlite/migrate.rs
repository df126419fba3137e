//! Schema migrations, applied by the backend itself over rusqlite.
//!
//! The SQL files are embedded at build time with `sqlx::migrate!` (which only reads the files and
//! computes their checksums; it needs no SQLite driver). Applied migrations are recorded in the
//! table sqlx uses, with sqlx's checksum (SHA-384 of the SQL text), so databases created by
//! earlier, sqlx-based versions of hookflow are recognised as they are and not migrated twice.

use crate::store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sqlx::migrate::{Migration, Migrator};
use std::collections::HashMap;
use std::time::Instant;

/// Every migration in `migrations/sqlite`, in the engine crate.
pub(super) static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// The table sqlx creates, with the same definition.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// The embedded migrations that apply changes (not the `.down.sql` halves of reversible ones), by
/// version.
fn migrations() -> Vec<&'static Migration> {
    let mut all: Vec<&Migration> = MIGRATOR
        .migrations
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    all.sort_by_key(|m| m.version);
    all
}

/// The schema version this build needs: its newest migration.
pub(super) fn latest_version() -> i64 {
    migrations().last().map_or(0, |m| m.version)
}

fn failed(error: impl std::fmt::Display) -> StoreError {
    StoreError::Migrate(error.to_string())
}

/// The newest migration applied to the database behind `conn` (0 for a database without any),
/// read without changing anything: for read-only opens.
pub(super) fn applied_version(conn: &Connection) -> StoreResult<i64> {
    let has_table = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            [],
            |_| Ok(()),
        )
        .optional()
        .map_err(failed)?
        .is_some();
    if !has_table {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
        [],
        |row| row.get(0),
    )
    .map_err(failed)
}

/// Applies every pending migration, each in its own transaction together with its record.
/// Refuses a database with a half-applied migration, a migration whose file changed since it was
/// applied, or one applied by a newer hookflow that this build does not know.
pub(super) fn run(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(CREATE_TABLE).map_err(failed)?;
    let dirty: Option<i64> = conn
        .query_row(
            "SELECT version FROM _sqlx_migrations WHERE NOT success ORDER BY version LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(failed)?;
    if let Some(version) = dirty {
        return Err(StoreError::Migrate(format!(
            "migration {version} was left partially applied"
        )));
    }
    let applied = applied_checksums(conn)?;
    let known = migrations();
    if let Some(version) = applied
        .keys()
        .filter(|v| !known.iter().any(|m| m.version == **v))
        .min()
    {
        return Err(StoreError::Migrate(format!(
            "the database has migration {version}, which this hookflow does not know: \
             it was last used by a newer version"
        )));
    }
    for migration in known {
        match applied.get(&migration.version) {
            Some(checksum) if checksum.as_slice() == &*migration.checksum => {}
            Some(_) => {
                return Err(StoreError::Migrate(format!(
                    "migration {} changed since it was applied",
                    migration.version
                )));
            }
            None => apply(conn, migration)?,
        }
    }
    Ok(())
}

fn applied_checksums(conn: &Connection) -> StoreResult<HashMap<i64, Vec<u8>>> {
    let mut stmt = conn
        .prepare("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
        .map_err(failed)?;
    let rows = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(failed)?;
    rows.collect::<Result<_, _>>().map_err(failed)
}

/// Runs one migration and records it, atomically (unless its file opts out of the transaction
/// with `-- no-transaction`, as sqlx allows).
fn apply(conn: &mut Connection, migration: &Migration) -> StoreResult<()> {
    let context = |e: rusqlite::Error| {
        StoreError::Migrate(format!(
            "migration {} ({}): {e}",
            migration.version, migration.description
        ))
    };
    let record = |conn: &Connection, nanos: i64| {
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?1, ?2, TRUE, ?3, ?4)",
            params![
                migration.version,
                &*migration.description,
                &*migration.checksum,
                nanos
            ],
        )
    };
    let started = Instant::now();
    if migration.no_tx {
        conn.execute_batch(&migration.sql).map_err(context)?;
        record(conn, elapsed_nanos(started)).map_err(context)?;
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(context)?;
    tx.execute_batch(&migration.sql).map_err(context)?;
    record(&tx, elapsed_nanos(started)).map_err(context)?;
    tx.commit().map_err(context)
}

fn elapsed_nanos(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX)
}
