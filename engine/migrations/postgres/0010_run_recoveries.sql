-- How many times a run was taken back from a process that died while running it: past a
-- limit it is FAILED as abandoned, so a run that kills its server is not re-run at every start.
ALTER TABLE runs ADD COLUMN recoveries BIGINT NOT NULL DEFAULT 0;
