-- MICA inventory schema, version 7 (postgres): alert de-duplication.
--
-- One row per (alert kind, subject) that was delivered, with when: the
-- alert engine sends a subject again only after its repeat interval, so a
-- fleet of short-lived certificates does not flood the receivers.

CREATE TABLE alert_state (
    kind      TEXT        NOT NULL,
    subject   TEXT        NOT NULL,
    last_sent TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, subject)
);

CREATE INDEX alert_state_last_sent ON alert_state (last_sent);
