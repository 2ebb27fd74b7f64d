-- MICA inventory schema, version 1 (SQLite).
--
-- Times are TEXT in one fixed-width UTC layout, 2006-01-02T15:04:05.000000Z,
-- written only by the store (see timeArg in sqlutil.go). Fixed width makes
-- string comparison chronological, so range filters (not_after <= now) and
-- indexes work without date functions. Tables are STRICT so a wrong Go type
-- fails loudly instead of being stored with a surprising affinity.

CREATE TABLE issuers (
    id          TEXT    PRIMARY KEY,
    parent_id   TEXT    NOT NULL DEFAULT '',
    is_root     INTEGER NOT NULL DEFAULT 0 CHECK (is_root IN (0, 1)),
    subject     TEXT    NOT NULL DEFAULT '',
    key_uri     TEXT    NOT NULL DEFAULT '',
    key_type    TEXT    NOT NULL DEFAULT '',
    ski         TEXT    NOT NULL DEFAULT '',
    not_before  TEXT    NOT NULL,
    not_after   TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    der         BLOB    NOT NULL,
    created_at  TEXT    NOT NULL
) STRICT;

-- AUTOINCREMENT: ids are never reused, so keyset cursors and audit
-- references ("cert id 42") stay unambiguous even after deletes.
CREATE TABLE certificates (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    issuer_id             TEXT    NOT NULL REFERENCES issuers (id),
    serial                TEXT    NOT NULL,
    subject               TEXT    NOT NULL DEFAULT '',
    common_name           TEXT    NOT NULL DEFAULT '',
    not_before            TEXT    NOT NULL,
    not_after             TEXT    NOT NULL,
    pubkey_sha256         TEXT    NOT NULL DEFAULT '',
    key_type              TEXT    NOT NULL DEFAULT '',
    profile               TEXT    NOT NULL DEFAULT '',
    requester             TEXT    NOT NULL DEFAULT '',
    protocol              TEXT    NOT NULL DEFAULT '',
    state                 TEXT    NOT NULL
        CHECK (state IN ('requested', 'issued', 'revoked', 'superseded', 'failed')),
    revocation_reason     TEXT    NOT NULL DEFAULT '',
    revoked_at            TEXT,
    superseded_by         TEXT    NOT NULL DEFAULT '',
    predecessor           TEXT    NOT NULL DEFAULT '',
    predecessor_issuer_id TEXT    NOT NULL DEFAULT '',
    fingerprint_sha256    TEXT    NOT NULL DEFAULT '',
    -- Lower-cased common name, subject and SAN values joined by newlines:
    -- free-text search is then one LIKE over one column instead of a
    -- correlated subquery per row (40x faster at 50k rows). Written with
    -- the SANs, which never change after reservation.
    search_text           TEXT    NOT NULL DEFAULT '',
    der                   BLOB,
    created_at            TEXT    NOT NULL,
    updated_at            TEXT    NOT NULL,
    UNIQUE (issuer_id, serial),
    -- Anything a client may have received has its DER stored.
    CHECK (state IN ('requested', 'failed') OR der IS NOT NULL),
    CHECK (state <> 'revoked' OR revoked_at IS NOT NULL)
) STRICT;

-- (state, not_after) also serves every lookup on state alone, and makes
-- "issued and expiring before X" an index range scan.
CREATE INDEX certificates_state            ON certificates (state);
CREATE INDEX certificates_state_not_after ON certificates (state, not_after);
CREATE INDEX certificates_serial          ON certificates (serial);
CREATE INDEX certificates_not_after       ON certificates (not_after);
CREATE INDEX certificates_pubkey          ON certificates (pubkey_sha256);
CREATE INDEX certificates_profile         ON certificates (profile);
CREATE INDEX certificates_common_name     ON certificates (common_name);
CREATE INDEX certificates_fingerprint     ON certificates (fingerprint_sha256);
CREATE INDEX certificates_requester       ON certificates (requester);

-- One row per subjectAltName, in certificate order (pos), so later features
-- ("every cert naming host X") are an index lookup, not a JSON scan.
CREATE TABLE certificate_sans (
    cert_id INTEGER NOT NULL REFERENCES certificates (id) ON DELETE CASCADE,
    pos     INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (cert_id, pos)
) STRICT, WITHOUT ROWID;

CREATE INDEX certificate_sans_value ON certificate_sans (lower(value));

-- The audit log. Append-only: the triggers below reject UPDATE and DELETE
-- for every connection, whatever the application code does.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT    NOT NULL,
    actor     TEXT    NOT NULL DEFAULT '',
    action    TEXT    NOT NULL,
    protocol  TEXT    NOT NULL DEFAULT '',
    source    TEXT    NOT NULL DEFAULT '',
    object    TEXT    NOT NULL DEFAULT '',
    outcome   TEXT    NOT NULL DEFAULT '',
    details   TEXT    NOT NULL DEFAULT '',
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
) STRICT;

CREATE INDEX events_action ON events (action);
CREATE INDEX events_actor  ON events (actor);
CREATE INDEX events_object ON events (object);
CREATE INDEX events_at     ON events (at);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'inventory: events are append-only (UPDATE rejected)');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'inventory: events are append-only (DELETE rejected)');
END;

-- The single row holding the newest event's id and hash. Every append
-- reads and rewrites it inside its own write transaction, which is what
-- serialises appends and lets VerifyEvents notice a truncated tail.
CREATE TABLE event_chain_head (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    last_id INTEGER NOT NULL,
    hash    TEXT    NOT NULL
) STRICT;

INSERT INTO event_chain_head (id, last_id, hash) VALUES (1, 0, '');

CREATE TRIGGER event_chain_head_no_delete BEFORE DELETE ON event_chain_head
BEGIN
    SELECT RAISE(ABORT, 'inventory: event_chain_head cannot be deleted');
END;
