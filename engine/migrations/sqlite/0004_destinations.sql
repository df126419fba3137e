-- Event destinations and their delivery outbox. Outbox rows are written in the same transaction
-- as the audit event they carry, so a committed event is never lost on its way out.
CREATE TABLE destinations (
    id              TEXT PRIMARY KEY,
    platform_id     TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    name            TEXT NOT NULL,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,          -- JSON list of actions; empty = all
    enabled         BOOLEAN NOT NULL,
    content_type    TEXT NOT NULL,
    headers         TEXT NOT NULL,          -- JSON {name: sealed value}
    token           TEXT NOT NULL,          -- sealed verification token
    secrets         TEXT NOT NULL,          -- JSON [{sealed, expires}] signing secrets, newest first
    disabled_reason TEXT,
    failing_since   TEXT,
    paused_until    BIGINT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    created         TEXT NOT NULL,
    updated         TEXT NOT NULL
);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,       -- also the webhook-id: stable across retries
    destination_id  TEXT NOT NULL,
    audit_seq       BIGINT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,          -- PENDING, DELIVERED, FAILED
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt    BIGINT NOT NULL,        -- epoch ms
    lease_expires   BIGINT,
    created         TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox(status, next_attempt);
CREATE INDEX outbox_destination ON outbox(destination_id, audit_seq);

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    destination_id  TEXT NOT NULL,
    outbox_id       TEXT NOT NULL,
    attempt         BIGINT NOT NULL,
    status_code     BIGINT,
    duration_ms     DOUBLE PRECISION NOT NULL,
    error           TEXT,
    response_body   TEXT,
    created         TEXT NOT NULL
);
CREATE INDEX deliveries_destination ON deliveries(destination_id, id);
