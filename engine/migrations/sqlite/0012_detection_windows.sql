-- State of `threshold` steps: per flow, step and group key, the recent events and the last
-- alert (`detect::window::KeyState` as JSON). `expires_at` (ms since the epoch) is when the
-- state can no longer change an outcome; expired rows are deleted when the step next sees a
-- new key and swept by every process now and then.
CREATE TABLE detection_windows (
    flow_id    TEXT NOT NULL,
    step       TEXT NOT NULL,
    key        TEXT NOT NULL,
    state      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (flow_id, step, key)
) WITHOUT ROWID;
CREATE INDEX detection_windows_expiry ON detection_windows (flow_id, step, expires_at);
