//! Reading the engine's audit log back: chain verification (tamper evidence) and the table the
//! CLI prints. Writing happens in `store`, in the same transaction as each change.

use crate::store::audit::{GENESIS, chain_hash};
use crate::store::{DynStore, StoreError};

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub id: String,
    pub reason: String,
}

/// Walks the whole chain. `Ok(n)` when all `n` events verify; otherwise the first broken link.
pub async fn verify(store: &DynStore) -> Result<Result<u64, BrokenLink>, StoreError> {
    let mut previous = GENESIS.to_string();
    let mut after = 0;
    let mut count = 0;
    loop {
        let rows = store.audit_chain(after, 1000).await?;
        if rows.is_empty() {
            return Ok(Ok(count));
        }
        for row in rows {
            if row.prev_hash != previous {
                let reason = "its predecessor link does not match the previous event (an event before it was deleted, inserted or reordered)".to_string();
                return Ok(Err(BrokenLink {
                    seq: row.seq,
                    id: row.id,
                    reason,
                }));
            }
            if chain_hash(&row.prev_hash, &row.body) != row.hash {
                let reason =
                    "its content does not match its hash (the event was edited)".to_string();
                return Ok(Err(BrokenLink {
                    seq: row.seq,
                    id: row.id,
                    reason,
                }));
            }
            previous = row.hash;
            after = row.seq;
            count += 1;
        }
    }
}
