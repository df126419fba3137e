-- Flow lifecycle. `version`/`definition` stay the published (live) version that webhooks and
-- schedules run; `draft_version` names a saved version in `flow_versions` that is not live yet
-- (NULL: no pending draft). `enabled` = 0 turns the flow off: its webhook answers 404 and stores
-- nothing, its schedule does not fire. Existing flows stay enabled and published as they were.
ALTER TABLE flows ADD COLUMN draft_version BIGINT;
ALTER TABLE flows ADD COLUMN enabled BIGINT NOT NULL DEFAULT 1;
