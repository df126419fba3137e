-- hookflow schema. SQL is kept portable (no SQLite-only types) so the PostgreSQL backend can share it.
-- Timestamps are RFC 3339 UTC text with millisecond precision; ids are UUIDv7 text, so ordering by
-- id is ordering by creation time and works as a pagination cursor.

CREATE TABLE platforms (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    created TEXT NOT NULL
);

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    platform_id TEXT NOT NULL REFERENCES platforms(id),
    name        TEXT NOT NULL,
    created     TEXT NOT NULL
);

CREATE TABLE flows (
    id          TEXT PRIMARY KEY,
    platform_id TEXT NOT NULL,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    definition  TEXT NOT NULL,
    created     TEXT NOT NULL,
    updated     TEXT NOT NULL,
    deleted     TEXT
);
CREATE INDEX flows_project ON flows(project_id, id);

-- Every save is a new version; runs point at the version they ran.
CREATE TABLE flow_versions (
    flow_id    TEXT NOT NULL,
    version    BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created    TEXT NOT NULL,
    PRIMARY KEY (flow_id, version)
);

-- Received events. `event_key` is the sender's event id; NULL for test runs, which are never
-- deduplicated (NULLs never collide in a unique index).
CREATE TABLE events (
    id        TEXT PRIMARY KEY,
    flow_id   TEXT NOT NULL,
    event_key TEXT,
    run_id    TEXT NOT NULL,
    headers   TEXT NOT NULL,
    body      TEXT NOT NULL,
    received  TEXT NOT NULL
);
CREATE UNIQUE INDEX events_dedup ON events(flow_id, event_key);

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    platform_id   TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    flow_id       TEXT NOT NULL,
    flow_version  BIGINT NOT NULL,
    event_id      TEXT NOT NULL,
    environment   TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempt       BIGINT NOT NULL DEFAULT 0,
    created       TEXT NOT NULL,
    started       TEXT,
    finished      TEXT,
    duration_ms   DOUBLE PRECISION,
    error         TEXT,
    lease_owner   TEXT,
    lease_expires BIGINT
);
CREATE INDEX runs_queue ON runs(status, id);
CREATE INDEX runs_flow ON runs(flow_id, id);

-- One row per executed step (router or action). A step runs at most once per run attempt because
-- step names are unique within a flow; a retry replaces the rows of the steps it re-runs.
CREATE TABLE step_results (
    run_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
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
