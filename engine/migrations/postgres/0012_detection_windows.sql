-- State of `threshold` steps: per flow, step and group key, the recent events and the last
-- alert (`detect::window::KeyState` as JSON). `expires_at` (ms since the epoch) is when the
-- state can no longer change an outcome; expired rows are deleted when the step next sees a
-- new key and swept by every process now and then.
CREATE TABLE detection_windows (
    flow_id    TEXT COLLATE "C" NOT NULL,
    step       TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    state      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (flow_id, step, key)
);
CREATE INDEX detection_windows_expiry ON detection_windows (flow_id, step, expires_at);
