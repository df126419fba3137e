-- Secrets, encrypted at rest (ChaCha20-Poly1305, the name bound as associated data so a
-- ciphertext cannot be moved to another name). Values are never returned by the API.
CREATE TABLE secrets (
    platform_id TEXT NOT NULL,
    project_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    ciphertext  TEXT NOT NULL,
    created     TEXT NOT NULL,
    updated     TEXT NOT NULL,
    PRIMARY KEY (project_id, name)
);
