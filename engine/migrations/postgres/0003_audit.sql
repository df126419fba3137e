-- The engine's own audit log, in the Activepieces envelope. `body` is the exact envelope JSON
-- the hash covers; the other columns are copies for filtering.
--
-- `seq` orders the hash chain and is the pagination key. Several processes append, so the chain
-- head lives in a one-row table that every append locks (SELECT … FOR UPDATE) for the rest of its
-- transaction: appends are serialized, seq is assigned from the head (no gaps from rolled-back
-- sequences), seq order is commit order, and a cursor never skips rows that commit later.
CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,
    id          TEXT COLLATE "C" NOT NULL UNIQUE,
    created     TEXT COLLATE "C" NOT NULL,
    platform_id TEXT COLLATE "C" NOT NULL,
    project_id  TEXT COLLATE "C",
    user_id     TEXT COLLATE "C",
    action      TEXT COLLATE "C" NOT NULL,
    body        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_action ON audit_events(action, seq);
CREATE INDEX audit_project ON audit_events(project_id, seq);
CREATE INDEX audit_user ON audit_events(user_id, seq);
CREATE INDEX audit_created ON audit_events(created, seq);

-- The last appended event's seq and hash. It outlives retention: after old events are deleted
-- the chain continues from the last hash instead of restarting at the genesis hash.
CREATE TABLE audit_chain_head (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
