-- MICA inventory schema, version 10 (PostgreSQL): recurring discovery
-- scans and UI account administration.
--
-- discovery_schedules: a replica whose ticker finds a schedule due claims
-- it with one conditional UPDATE (runs must still equal what it read and
-- next_run must still be due) in the transaction that queues the normal
-- discovery job, so each due time yields exactly one job however many
-- replicas race. The spec is the same JSON as discovery_jobs.spec.
CREATE TABLE discovery_schedules (
    id               BIGSERIAL PRIMARY KEY,
    kind             TEXT        NOT NULL CHECK (kind IN ('scan')),
    spec             TEXT        NOT NULL DEFAULT '{}',
    interval_seconds BIGINT      NOT NULL CHECK (interval_seconds >= 60),
    enabled          INTEGER     NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    next_run         TIMESTAMPTZ NOT NULL,
    runs             BIGINT      NOT NULL DEFAULT 0,
    last_run         TIMESTAMPTZ,
    last_job_id      BIGINT      NOT NULL DEFAULT 0,
    last_error       TEXT        NOT NULL DEFAULT '',
    created_by       TEXT        NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX discovery_schedules_due ON discovery_schedules (enabled, next_run);

-- A disabled account cannot log in; disabling it also deletes its sessions.
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMPTZ;
