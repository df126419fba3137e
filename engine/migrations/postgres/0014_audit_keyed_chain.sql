-- The keyed audit chain. Events from `keyed_from` on are hashed with HMAC-SHA256 (a key derived
-- from the secret key, never stored here) over every column the API and retention read (seq, id,
-- created, platform, project, user, action, body) and the previous hash. Events written before
-- this migration keep their SHA-256 hashes (`sha256(prev_hash || body)`) and verify under that
-- rule; the first keyed event links to the last of them, so rewriting them breaks that link.
-- `mac` signs the head (seq, hash, keyed_from) with the same key: NULL until the first keyed
-- append, since SQL has no key.
ALTER TABLE audit_chain_head ADD COLUMN keyed_from BIGINT;
ALTER TABLE audit_chain_head ADD COLUMN mac TEXT;
UPDATE audit_chain_head SET keyed_from = seq + 1;
-- What retention deleted, one row per deleted range, keyed like the head: verify tells a range
-- retention removed (and archived, `archive_digest` = SHA-256 of the archived JSONL) from rows
-- someone deleted.
CREATE TABLE audit_checkpoints (
    first_seq      BIGINT PRIMARY KEY,
    last_seq       BIGINT NOT NULL,
    count          BIGINT NOT NULL,
    prev_hash      TEXT NOT NULL,
    last_hash      TEXT NOT NULL,
    archive_digest TEXT,
    created        TEXT NOT NULL,
    mac            TEXT NOT NULL
);
