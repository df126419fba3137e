-- People and access: users, project members, server-side sessions, API keys, invitations, and the
-- scope of event destinations. Secrets are never stored: passwords as argon2id PHC strings,
-- session cookies, API keys and invitation tokens as SHA-256 digests.

CREATE TABLE users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    platform_id   TEXT COLLATE "C" NOT NULL REFERENCES platforms(id),
    email         TEXT NOT NULL UNIQUE,     -- lower-cased
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    platform_role TEXT,                     -- platform-admin, auditor, or NULL (project roles only)
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created       TEXT NOT NULL,
    updated       TEXT NOT NULL
);

CREATE TABLE project_members (
    project_id TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    role       TEXT NOT NULL,               -- admin, editor, operator, viewer
    created    TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members(user_id);

CREATE TABLE sessions (
    id           TEXT COLLATE "C" PRIMARY KEY,          -- SHA-256 of the cookie value
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    csrf         TEXT NOT NULL,
    ip           TEXT,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL            -- absolute expiry
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_keys (
    id           TEXT COLLATE "C" PRIMARY KEY,
    platform_id  TEXT NOT NULL,
    project_id   TEXT,                      -- NULL: a platform-wide key
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    prefix       TEXT NOT NULL,             -- shown for recognition
    hash         TEXT NOT NULL UNIQUE,      -- SHA-256 of the key
    expires_ms   BIGINT,
    last_used_ms BIGINT,
    revoked      TEXT,
    created      TEXT NOT NULL,
    created_by   TEXT
);
CREATE INDEX api_keys_project ON api_keys(project_id, id);

CREATE TABLE invitations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
    email       TEXT NOT NULL,
    role        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,       -- SHA-256 of the one-time token
    expires_ms  BIGINT NOT NULL,
    accepted    TEXT,
    created     TEXT NOT NULL,
    created_by  TEXT
);
CREATE INDEX invitations_project ON invitations(project_id, id);

ALTER TABLE destinations ADD COLUMN scope TEXT NOT NULL DEFAULT 'PLATFORM';
CREATE INDEX runs_project ON runs(project_id, id);
