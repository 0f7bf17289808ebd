-- The admin API's background jobs (issue 17): room deletions, history
-- purges and user redactions, one table for all as Synapse's
-- scheduled_tasks, so that a restart neither forgets a job's status nor
-- drops a queued one. status is Synapse's TaskStatus (scheduled, active,
-- complete, failed); phase is a room deletion's finer step
-- (shutting_down, purging) for its delete_status; params and result are
-- JSON; timestamp_ms is when the status last changed, as Synapse's.
CREATE TABLE scheduled_tasks (
    id           TEXT PRIMARY KEY,
    action       TEXT NOT NULL,
    status       TEXT NOT NULL,
    phase        TEXT NOT NULL DEFAULT '',
    timestamp_ms BIGINT NOT NULL,
    queued_ts    BIGINT NOT NULL,
    resource_id  TEXT NOT NULL,
    params       TEXT NOT NULL,
    result       TEXT NOT NULL DEFAULT '',
    error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX scheduled_tasks_resource ON scheduled_tasks (resource_id);
CREATE INDEX scheduled_tasks_status ON scheduled_tasks (status, queued_ts);
