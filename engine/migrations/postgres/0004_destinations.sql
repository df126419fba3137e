-- Event destinations and their delivery outbox. Outbox rows are written in the same transaction
-- as the audit event they carry, so a committed event is never lost on its way out.
CREATE TABLE destinations (
    id              TEXT COLLATE "C" PRIMARY KEY,
    platform_id     TEXT COLLATE "C" NOT NULL,
    project_id      TEXT COLLATE "C" NOT NULL,
    name            TEXT NOT NULL,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,          -- JSON list of actions; empty = all
    enabled         BOOLEAN NOT NULL,
    content_type    TEXT NOT NULL,
    headers         TEXT NOT NULL,          -- JSON {name: sealed value}
    token           TEXT NOT NULL,          -- sealed verification token
    secrets         TEXT NOT NULL,          -- JSON [{sealed, expires}] signing secrets, newest first
    disabled_reason TEXT,
    failing_since   TEXT COLLATE "C",
    paused_until    BIGINT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    created         TEXT COLLATE "C" NOT NULL,
    updated         TEXT COLLATE "C" NOT NULL
);

-- Several processes share the outbox: a claim locks the destination rows it serves
-- (FOR UPDATE SKIP LOCKED, so claimers pass over each other's destinations) and leases the
-- entries it takes, so no entry is held by two processes while its lease is valid.
CREATE TABLE outbox (
    id              TEXT COLLATE "C" PRIMARY KEY,   -- also the webhook-id: stable across retries
    destination_id  TEXT COLLATE "C" NOT NULL,
    audit_seq       BIGINT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,          -- PENDING, DELIVERED, FAILED
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt    BIGINT NOT NULL,        -- epoch ms
    lease_expires   BIGINT,                 -- epoch ms
    created         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX outbox_due ON outbox(status, next_attempt);
CREATE INDEX outbox_destination ON outbox(destination_id, audit_seq);

CREATE TABLE deliveries (
    id              TEXT COLLATE "C" PRIMARY KEY,
    destination_id  TEXT COLLATE "C" NOT NULL,
    outbox_id       TEXT COLLATE "C" NOT NULL,
    attempt         BIGINT NOT NULL,
    status_code     BIGINT,
    duration_ms     DOUBLE PRECISION NOT NULL,
    error           TEXT,
    response_body   TEXT,
    created         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX deliveries_destination ON deliveries(destination_id, id);
