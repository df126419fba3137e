-- The engine's own audit log, in the Activepieces envelope. `seq` orders the hash chain and is
-- the pagination key: rows are appended by the single writer, so seq order is commit order and a
-- cursor never skips or repeats rows while new events arrive. `body` is the exact envelope JSON
-- the hash covers; the other columns are copies for filtering.
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    created     TEXT NOT NULL,
    platform_id TEXT NOT NULL,
    project_id  TEXT,
    user_id     TEXT,
    action      TEXT NOT NULL,
    body        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_action ON audit_events(action, seq);
CREATE INDEX audit_project ON audit_events(project_id, seq);
CREATE INDEX audit_user ON audit_events(user_id, seq);
CREATE INDEX audit_created ON audit_events(created, seq);
