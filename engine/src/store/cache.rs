//! The flow cache: short-lived strings a flow's steps keep between runs (Auth0 Actions'
//! `api.cache`), each with an expiry in milliseconds since the epoch. Reads ignore expired rows;
//! writes first delete the flow's expired rows, so the table holds only what is live plus what
//! expired since the flow last wrote.

use super::StoreResult;
use super::sql::{Conn, params};

/// A live cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub value: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// Why a cache write was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRefusal {
    /// The flow already holds this many live entries (the key is not one of them).
    Full(u64),
}

/// The live entry for `key`, if any, as of `now_ms`.
pub async fn get(
    c: &mut dyn Conn,
    flow_id: &str,
    key: &str,
    now_ms: i64,
) -> StoreResult<Option<CacheEntry>> {
    c.query_opt(
        "SELECT value, expires_at FROM flow_cache WHERE flow_id = ? AND key = ? AND expires_at > ?",
        params![flow_id, key, now_ms],
    )
    .await?
    .map(|r| {
        Ok(CacheEntry {
            value: r.text("value")?,
            expires_at: r.int("expires_at")?,
        })
    })
    .transpose()
}

/// Stores `entry` under `key`, unless the flow already holds `max_entries` other live entries.
/// Expired entries of the flow are deleted first, so they never count against the limit.
pub async fn set(
    c: &mut dyn Conn,
    flow_id: &str,
    key: &str,
    entry: &CacheEntry,
    now_ms: i64,
    max_entries: u64,
) -> StoreResult<Result<(), CacheRefusal>> {
    c.execute(
        "DELETE FROM flow_cache WHERE flow_id = ? AND expires_at <= ?",
        params![flow_id, now_ms],
    )
    .await?;
    let others = c
        .query_opt(
            "SELECT count(*) AS n FROM flow_cache WHERE flow_id = ? AND key <> ?",
            params![flow_id, key],
        )
        .await?
        .map(|r| r.int("n"))
        .transpose()?
        .unwrap_or(0);
    if others as u64 >= max_entries {
        return Ok(Err(CacheRefusal::Full(max_entries)));
    }
    c.execute(
        "INSERT INTO flow_cache (flow_id, key, value, expires_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (flow_id, key) DO UPDATE SET value = excluded.value, \
         expires_at = excluded.expires_at",
        params![flow_id, key, &entry.value, entry.expires_at],
    )
    .await?;
    Ok(Ok(()))
}

/// Deletes `key` (an expired row for it is garbage either way); true when a live entry was
/// removed.
pub async fn delete(c: &mut dyn Conn, flow_id: &str, key: &str, now_ms: i64) -> StoreResult<bool> {
    let removed = c
        .query_opt(
            "DELETE FROM flow_cache WHERE flow_id = ? AND key = ? RETURNING expires_at",
            params![flow_id, key],
        )
        .await?;
    Ok(match removed {
        Some(row) => row.int("expires_at")? > now_ms,
        None => false,
    })
}
