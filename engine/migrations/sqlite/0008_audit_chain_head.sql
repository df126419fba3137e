-- The last appended audit event's seq and hash, as on PostgreSQL. It outlives retention: after
-- old events are deleted, the chain and seq go on from the last ones instead of restarting at the
-- genesis hash and seq 1 (which broke the link to archived events and put new outbox entries
-- ahead of an old backlog). Every append reads and updates it in the same transaction.
CREATE TABLE audit_chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash)
VALUES (
    1,
    COALESCE((SELECT MAX(seq) FROM audit_events), 0),
    COALESCE(
        (SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1),
        '0000000000000000000000000000000000000000000000000000000000000000'
    )
);
