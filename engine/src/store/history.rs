//! Past events read back for replays: a flow's own live events in a time range, oldest first.

use super::StoreResult;
use super::sql::{Conn, params};

/// Bodies of the live (PRODUCTION) events `flow_id` received in `[from, to)` (RFC 3339 in the
/// stored form), oldest first, at most `limit`.
pub async fn flow_events(
    c: &mut dyn Conn,
    flow_id: &str,
    from: &str,
    to: &str,
    limit: i64,
) -> StoreResult<Vec<String>> {
    c.query(
        "SELECT e.body FROM events e JOIN runs r ON r.id = e.run_id \
         WHERE e.flow_id = ? AND e.received >= ? AND e.received < ? \
         AND r.environment = 'PRODUCTION' ORDER BY e.received, e.id LIMIT ?",
        params![flow_id, from, to, limit],
    )
    .await?
    .into_iter()
    .map(|row| row.text("body"))
    .collect()
}
