//! State of `threshold` steps (`detection_windows`): one row per flow, step and group key,
//! holding an opaque state text the detection code reads and rewrites. The store only makes
//! the read-modify-write atomic across processes: the row is created empty if missing, then
//! locked (`FOR UPDATE` on PostgreSQL; SQLite has one writer), so three processes counting a
//! burst for the same key each see the others' events and exactly one of them crosses.

use super::StoreResult;
use super::sql::{Conn, params};

/// A rewrite of one key's state.
pub struct WindowWrite<T> {
    /// The new state text.
    pub state: String,
    /// Until when (ms since the epoch) the row is worth keeping.
    pub expires_at: i64,
    /// What the caller hands back.
    pub outcome: T,
}

/// Why a key's state was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowRefusal {
    /// The step already holds this many live keys and the key is not one of them.
    KeyLimit(u64),
}

/// Reads the state of (`flow_id`, `step`, `key`) (`None` when the key is new or expired),
/// applies `update` and writes the result, in the caller's transaction. A new key is refused
/// when the step holds `max_keys` live ones; the step's expired keys are deleted first, so
/// they never count.
pub async fn update<T>(
    c: &mut dyn Conn,
    (flow_id, step, key): (&str, &str, &str),
    now_ms: i64,
    max_keys: u64,
    update: impl FnOnce(Option<String>) -> WindowWrite<T>,
) -> StoreResult<Result<T, WindowRefusal>> {
    let known = c
        .query_opt(
            "SELECT expires_at FROM detection_windows WHERE flow_id = ? AND step = ? AND key = ?",
            params![flow_id, step, key],
        )
        .await?
        .is_some();
    if !known {
        c.execute(
            "DELETE FROM detection_windows WHERE flow_id = ? AND step = ? AND expires_at <= ?",
            params![flow_id, step, now_ms],
        )
        .await?;
        let live = c
            .query_opt(
                "SELECT count(*) AS n FROM detection_windows WHERE flow_id = ? AND step = ?",
                params![flow_id, step],
            )
            .await?
            .map(|r| r.int("n"))
            .transpose()?
            .unwrap_or(0);
        if live as u64 >= max_keys {
            return Ok(Err(WindowRefusal::KeyLimit(max_keys)));
        }
        // An empty row first, so the lock below holds even for a key no one has written yet:
        // a concurrent first event waits here instead of overwriting this one.
        c.execute(
            "INSERT INTO detection_windows (flow_id, step, key, state, expires_at) \
             VALUES (?, ?, ?, '', ?) ON CONFLICT (flow_id, step, key) DO NOTHING",
            params![flow_id, step, key, now_ms],
        )
        .await?;
    }
    let lock = c.dialect().for_update();
    let current = c
        .query_opt(
            &format!(
                "SELECT state, expires_at FROM detection_windows \
                 WHERE flow_id = ? AND step = ? AND key = ?{lock}"
            ),
            params![flow_id, step, key],
        )
        .await?;
    let state = match current {
        Some(row) if row.int("expires_at")? > now_ms => {
            Some(row.text("state")?).filter(|s| !s.is_empty())
        }
        _ => None,
    };
    let write = update(state);
    c.execute(
        "INSERT INTO detection_windows (flow_id, step, key, state, expires_at) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (flow_id, step, key) DO UPDATE \
         SET state = excluded.state, expires_at = excluded.expires_at",
        params![flow_id, step, key, &write.state, write.expires_at],
    )
    .await?;
    Ok(Ok(write.outcome))
}

/// Deletes up to `limit` expired rows of any flow; returns how many went.
pub async fn delete_expired(c: &mut dyn Conn, now_ms: i64, limit: i64) -> StoreResult<u64> {
    c.execute(
        "DELETE FROM detection_windows WHERE (flow_id, step, key) IN \
         (SELECT flow_id, step, key FROM detection_windows WHERE expires_at <= ? LIMIT ?)",
        params![now_ms, limit],
    )
    .await
}

/// Deletes every key of a flow (the flow was deleted).
pub async fn delete_flow(c: &mut dyn Conn, flow_id: &str) -> StoreResult<u64> {
    c.execute(
        "DELETE FROM detection_windows WHERE flow_id = ?",
        params![flow_id],
    )
    .await
}
