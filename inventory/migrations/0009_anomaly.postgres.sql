-- MICA inventory schema, version 9 (PostgreSQL): key usage per hour.
--
-- Same shape as 0009_anomaly.sqlite.sql: one row per (key, UTC hour),
-- written by upserts that add (signatures = signatures + excluded), so
-- replicas flushing into the same bucket never lose a count.

CREATE TABLE key_usage_hourly (
    key_id     TEXT        NOT NULL REFERENCES keys (id),
    hour       TIMESTAMPTZ NOT NULL,
    signatures BIGINT      NOT NULL,
    first_at   TIMESTAMPTZ NOT NULL,
    last_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (key_id, hour)
);

CREATE INDEX key_usage_hourly_hour ON key_usage_hourly (hour);

-- Enrollment anomaly detection reads issuance events by time and action.
CREATE INDEX events_action_at ON events (action, at);
