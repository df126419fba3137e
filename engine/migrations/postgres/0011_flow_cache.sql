-- Short-lived values a flow's steps cache (the `memory` capability's cache calls; the
-- `javascript` plugin's `api.cache`), each with the end of its lifetime in ms since the epoch.
-- Expired rows are removed when the flow next writes its cache.
CREATE TABLE flow_cache (
    flow_id    TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (flow_id, key)
);
CREATE INDEX flow_cache_expiry ON flow_cache (flow_id, expires_at);
