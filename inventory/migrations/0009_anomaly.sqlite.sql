-- MICA inventory schema, version 9 (sqlite): key usage per hour.
--
-- One row per (key, UTC hour) with the signatures the key made in that
-- hour, as counted by the signing path (ca.MeteredKeys) and flushed as
-- increments: every replica adds its own counts to the same row
-- (INSERT … ON CONFLICT DO UPDATE SET signatures = signatures + excluded),
-- so the sum is exact however many replicas sign. The alert engine reads
-- these buckets for burst and off-hours detection; /metrics reads the
-- last hour. hour is the start of the hour (UTC, minutes and seconds zero).

CREATE TABLE key_usage_hourly (
    key_id     TEXT    NOT NULL REFERENCES keys (id),
    hour       TEXT    NOT NULL,
    signatures INTEGER NOT NULL,
    first_at   TEXT    NOT NULL,
    last_at    TEXT    NOT NULL,
    PRIMARY KEY (key_id, hour)
) STRICT;

CREATE INDEX key_usage_hourly_hour ON key_usage_hourly (hour);

-- Enrollment anomaly detection reads issuance events by time and action.
CREATE INDEX events_action_at ON events (action, at);
