-- MICA inventory schema, version 2 (SQLite): revocation state shared by
-- every replica, so each serves the same CRL bytes and OCSP answers.

-- One CRL Number sequence per issuer (RFC 5280 section 5.2.3), shared by
-- its full, sharded and delta CRLs. Incremented with an upsert in the
-- writer's transaction, so numbers never repeat or go backwards.
CREATE TABLE crl_numbers (
    issuer_id TEXT    PRIMARY KEY REFERENCES issuers (id),
    number    INTEGER NOT NULL
) STRICT;

-- The newest CRL per issuer and scope. shard 0 is the full CRL, 1..N the
-- partitions; delta 1 marks a delta CRL. Older CRLs are overwritten: only
-- the newest is ever served.
CREATE TABLE crls (
    issuer_id   TEXT    NOT NULL REFERENCES issuers (id),
    shard       INTEGER NOT NULL,
    delta       INTEGER NOT NULL CHECK (delta IN (0, 1)),
    number      INTEGER NOT NULL,
    this_update TEXT    NOT NULL,
    next_update TEXT    NOT NULL,
    entries     INTEGER NOT NULL,
    sha256      TEXT    NOT NULL,
    der         BLOB    NOT NULL,
    created_at  TEXT    NOT NULL,
    PRIMARY KEY (issuer_id, shard, delta)
) STRICT;

-- Pre-signed OCSP responses (no nonce), one per certificate.
CREATE TABLE ocsp_responses (
    issuer_id   TEXT NOT NULL REFERENCES issuers (id),
    serial      TEXT NOT NULL,
    status      TEXT NOT NULL,
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL,
    der         BLOB NOT NULL,
    PRIMARY KEY (issuer_id, serial)
) STRICT;

CREATE INDEX ocsp_responses_next_update ON ocsp_responses (next_update);

-- Public keys that must never be certified again (key compromise).
CREATE TABLE blocked_keys (
    pubkey_sha256 TEXT PRIMARY KEY,
    reason        TEXT NOT NULL DEFAULT '',
    actor         TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL
) STRICT;

-- Single-writer job leases (SQLite has no advisory locks; PostgreSQL uses
-- pg_try_advisory_lock instead and leaves this table empty).
CREATE TABLE job_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;

CREATE INDEX certificates_issuer_state ON certificates (issuer_id, state, not_after);
