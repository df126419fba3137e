-- When a queued run may be claimed (ms since the epoch); NULL means at once. A run whose step
-- failed retryably with a long backoff goes back to the queue with this set instead of sleeping
-- in a worker slot, and keeps it while it runs again so the claim knows it is a resumption (no
-- second `flow.run.started`, no new attempt). Finishing, recovering or releasing clears it.
ALTER TABLE runs ADD COLUMN not_before BIGINT;
-- Claims rank each flow's queued runs (fair share per flow): read them in that order.
CREATE INDEX runs_queue_flow ON runs(status, flow_id, id);
