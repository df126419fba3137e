-- hookflow schema for PostgreSQL: the same tables and columns as migrations/sqlite, so both
-- backends store records identically. Timestamps are RFC 3339 UTC text with millisecond
-- precision and ids are UUIDv7 text, exactly as on SQLite. Text that is ordered or compared
-- (ids, times, names) uses the "C" collation so ordering is byte order, as on SQLite, whatever
-- the database's default locale is. JSON documents stay TEXT: the store hands back the exact
-- text it was given (audit hashes cover the exact bytes; JSONB would reorder keys).

CREATE TABLE platforms (
    id      TEXT COLLATE "C" PRIMARY KEY,
    name    TEXT NOT NULL,
    created TEXT COLLATE "C" NOT NULL
);

CREATE TABLE projects (
    id          TEXT COLLATE "C" PRIMARY KEY,
    platform_id TEXT COLLATE "C" NOT NULL REFERENCES platforms(id),
    name        TEXT NOT NULL,
    created     TEXT COLLATE "C" NOT NULL
);

CREATE TABLE flows (
    id          TEXT COLLATE "C" PRIMARY KEY,
    platform_id TEXT COLLATE "C" NOT NULL,
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    definition  TEXT NOT NULL,
    created     TEXT COLLATE "C" NOT NULL,
    updated     TEXT COLLATE "C" NOT NULL,
    deleted     TEXT COLLATE "C"
);
CREATE INDEX flows_project ON flows(project_id, id);

-- Every save is a new version; runs point at the version they ran.
CREATE TABLE flow_versions (
    flow_id    TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (flow_id, version)
);

-- Received events. `event_key` is the sender's event id; NULL for test runs, which are never
-- deduplicated (NULLs are distinct in a unique index). The unique index is also what makes
-- dedup correct across processes: a concurrent duplicate waits for the first insert to commit
-- and then conflicts.
CREATE TABLE events (
    id        TEXT COLLATE "C" PRIMARY KEY,
    flow_id   TEXT COLLATE "C" NOT NULL,
    event_key TEXT COLLATE "C",
    run_id    TEXT COLLATE "C" NOT NULL,
    headers   TEXT NOT NULL,
    body      TEXT NOT NULL,
    received  TEXT COLLATE "C" NOT NULL
);
CREATE UNIQUE INDEX events_dedup ON events(flow_id, event_key);

CREATE TABLE runs (
    id            TEXT COLLATE "C" PRIMARY KEY,
    platform_id   TEXT COLLATE "C" NOT NULL,
    project_id    TEXT COLLATE "C" NOT NULL,
    flow_id       TEXT COLLATE "C" NOT NULL,
    flow_version  BIGINT NOT NULL,
    event_id      TEXT COLLATE "C" NOT NULL,
    environment   TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempt       BIGINT NOT NULL DEFAULT 0,
    created       TEXT COLLATE "C" NOT NULL,
    started       TEXT COLLATE "C",
    finished      TEXT COLLATE "C",
    duration_ms   DOUBLE PRECISION,
    error         TEXT,
    lease_owner   TEXT,
    lease_expires BIGINT                    -- epoch ms
);
CREATE INDEX runs_queue ON runs(status, id);
CREATE INDEX runs_flow ON runs(flow_id, id);
-- Lease renewal, release and expiry look runs up by holder and by expiry.
CREATE INDEX runs_lease_owner ON runs(lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX runs_lease_expires ON runs(lease_expires) WHERE status = 'RUNNING';

-- One row per executed step (router or action). A retry replaces the rows of the steps it re-runs.
CREATE TABLE step_results (
    run_id      TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    input       TEXT,
    output      TEXT,
    error       TEXT,
    attempts    BIGINT NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    detail      TEXT,
    PRIMARY KEY (run_id, name)
);
