-- Secrets, encrypted at rest (ChaCha20-Poly1305, the name bound as associated data so a
-- ciphertext cannot be moved to another name). Values are never returned by the API.
CREATE TABLE secrets (
    platform_id TEXT COLLATE "C" NOT NULL,
    project_id  TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    nonce       TEXT NOT NULL,
    ciphertext  TEXT NOT NULL,
    created     TEXT COLLATE "C" NOT NULL,
    updated     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (project_id, name)
);
