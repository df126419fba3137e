//! Flow memory on PostgreSQL: keys a flow's steps remembered ("seen this IP before?").

use crate::store::{StoreResult, now_text};
use sqlx::PgPool;

/// Records `key` for `flow_id` when `record` is set; true when the key was not known before.
/// The primary key decides "first" atomically: of several processes recording the same new key
/// at once, exactly one hears true.
pub async fn remember(pool: &PgPool, flow_id: &str, key: &str, record: bool) -> StoreResult<bool> {
    if !record {
        let known = sqlx::query("SELECT 1 FROM flow_memory WHERE flow_id = $1 AND key = $2")
            .bind(flow_id)
            .bind(key)
            .fetch_optional(pool)
            .await?;
        return Ok(known.is_none());
    }
    let inserted = sqlx::query(
        "INSERT INTO flow_memory (flow_id, key, created) VALUES ($1, $2, $3) \
         ON CONFLICT (flow_id, key) DO NOTHING",
    )
    .bind(flow_id)
    .bind(key)
    .bind(now_text())
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() == 1)
}
