-- Short-lived values a flow's steps cache (the `memory` capability's cache calls; the
-- `javascript` plugin's `api.cache`), each with the end of its lifetime in ms since the epoch.
-- Expired rows are removed when the flow next writes its cache.
CREATE TABLE flow_cache (
    flow_id    TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (flow_id, key)
) WITHOUT ROWID;
CREATE INDEX flow_cache_expiry ON flow_cache (flow_id, expires_at);
