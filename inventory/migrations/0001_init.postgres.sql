-- MICA inventory schema, version 1 (PostgreSQL).
--
-- Same shape as 0001_init.sqlite.sql. Times are TIMESTAMPTZ (microsecond
-- precision; the store truncates to microseconds before writing so values
-- and audit hashes survive the round trip). details stays TEXT, not JSONB:
-- JSONB reorders keys and rewrites whitespace, which would break the audit
-- hash computed over the exact stored text. Objects are created unqualified
-- so they land in the first schema of search_path (tests use one schema
-- each).

CREATE TABLE issuers (
    id          TEXT        PRIMARY KEY,
    parent_id   TEXT        NOT NULL DEFAULT '',
    is_root     BOOLEAN     NOT NULL DEFAULT FALSE,
    subject     TEXT        NOT NULL DEFAULT '',
    key_uri     TEXT        NOT NULL DEFAULT '',
    key_type    TEXT        NOT NULL DEFAULT '',
    ski         TEXT        NOT NULL DEFAULT '',
    not_before  TIMESTAMPTZ NOT NULL,
    not_after   TIMESTAMPTZ NOT NULL,
    status      TEXT        NOT NULL,
    der         BYTEA       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE certificates (
    id                    BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    issuer_id             TEXT        NOT NULL REFERENCES issuers (id),
    serial                TEXT        NOT NULL,
    subject               TEXT        NOT NULL DEFAULT '',
    common_name           TEXT        NOT NULL DEFAULT '',
    not_before            TIMESTAMPTZ NOT NULL,
    not_after             TIMESTAMPTZ NOT NULL,
    pubkey_sha256         TEXT        NOT NULL DEFAULT '',
    key_type              TEXT        NOT NULL DEFAULT '',
    profile               TEXT        NOT NULL DEFAULT '',
    requester             TEXT        NOT NULL DEFAULT '',
    protocol              TEXT        NOT NULL DEFAULT '',
    state                 TEXT        NOT NULL
        CHECK (state IN ('requested', 'issued', 'revoked', 'superseded', 'failed')),
    revocation_reason     TEXT        NOT NULL DEFAULT '',
    revoked_at            TIMESTAMPTZ,
    superseded_by         TEXT        NOT NULL DEFAULT '',
    predecessor           TEXT        NOT NULL DEFAULT '',
    predecessor_issuer_id TEXT        NOT NULL DEFAULT '',
    fingerprint_sha256    TEXT        NOT NULL DEFAULT '',
    -- Lower-cased common name, subject and SAN values joined by newlines:
    -- free-text search is then one LIKE over one column instead of a
    -- correlated subquery per row (40x faster at 50k rows). Written with
    -- the SANs, which never change after reservation.
    search_text           TEXT        NOT NULL DEFAULT '',
    der                   BYTEA,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    UNIQUE (issuer_id, serial),
    CHECK (state IN ('requested', 'failed') OR der IS NOT NULL),
    CHECK (state <> 'revoked' OR revoked_at IS NOT NULL)
);

CREATE INDEX certificates_state            ON certificates (state);
CREATE INDEX certificates_state_not_after ON certificates (state, not_after);
CREATE INDEX certificates_serial          ON certificates (serial);
CREATE INDEX certificates_not_after       ON certificates (not_after);
CREATE INDEX certificates_pubkey          ON certificates (pubkey_sha256);
CREATE INDEX certificates_profile         ON certificates (profile);
CREATE INDEX certificates_common_name     ON certificates (common_name);
CREATE INDEX certificates_fingerprint     ON certificates (fingerprint_sha256);
CREATE INDEX certificates_requester       ON certificates (requester);

CREATE TABLE certificate_sans (
    cert_id BIGINT  NOT NULL REFERENCES certificates (id) ON DELETE CASCADE,
    pos     INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (cert_id, pos)
);

CREATE INDEX certificate_sans_value ON certificate_sans (lower(value));

CREATE TABLE events (
    id        BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT        NOT NULL DEFAULT '',
    action    TEXT        NOT NULL,
    protocol  TEXT        NOT NULL DEFAULT '',
    source    TEXT        NOT NULL DEFAULT '',
    object    TEXT        NOT NULL DEFAULT '',
    outcome   TEXT        NOT NULL DEFAULT '',
    details   TEXT        NOT NULL DEFAULT '',
    prev_hash TEXT        NOT NULL,
    hash      TEXT        NOT NULL
);

CREATE INDEX events_action ON events (action);
CREATE INDEX events_actor  ON events (actor);
CREATE INDEX events_object ON events (object);
CREATE INDEX events_at     ON events (at);

-- Raised for UPDATE/DELETE (row level) and TRUNCATE (statement level).
CREATE FUNCTION mica_reject_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'inventory: % is append-only (% rejected)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION mica_reject_audit_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION mica_reject_audit_change();

-- Row-locked (SELECT … FOR UPDATE) by every append, so appends from all
-- replicas serialise and the chain never forks.
CREATE TABLE event_chain_head (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    last_id BIGINT  NOT NULL,
    hash    TEXT    NOT NULL
);

INSERT INTO event_chain_head (id, last_id, hash) VALUES (1, 0, '');

CREATE TRIGGER event_chain_head_no_delete BEFORE DELETE ON event_chain_head
    FOR EACH ROW EXECUTE FUNCTION mica_reject_audit_change();
CREATE TRIGGER event_chain_head_no_truncate BEFORE TRUNCATE ON event_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION mica_reject_audit_change();
