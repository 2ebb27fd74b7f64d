-- MICA inventory schema, version 4 (PostgreSQL): the EST server's state.
--
-- Everything an EST replica needs is here so any replica can answer any
-- request: one-time enrollment tokens (only a SHA-256 of the secret is
-- kept), fixed-window rate-limit counters, pre-generated server keys
-- (sealed; a claimed key is deleted in the statement that claims it) and
-- enrollments waiting for an operator's approval.

CREATE TABLE est_tokens (
    id            TEXT PRIMARY KEY,           -- the HTTP Basic user name
    label         TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,              -- hex SHA-256 of the 256-bit secret
    names         TEXT NOT NULL DEFAULT '[]', -- JSON identifiers the token may enroll
    expires_at    TIMESTAMPTZ NOT NULL,
    used_at       TIMESTAMPTZ,
    used_by       TEXT NOT NULL DEFAULT '',   -- source address of the use
    created_by    TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE est_rate (
    client  TEXT PRIMARY KEY,
    win     BIGINT NOT NULL, -- window number: unix seconds / window length
    hits    BIGINT NOT NULL
);

CREATE TABLE est_pool_keys (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    label       TEXT NOT NULL,
    key_type    TEXT NOT NULL,
    sealed      BYTEA NOT NULL, -- AES-256-GCM nonce ‖ ciphertext of PKCS#8
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX est_pool_keys_label ON est_pool_keys (label, key_type, id);

CREATE TABLE est_pending (
    id              TEXT PRIMARY KEY,
    label           TEXT NOT NULL,
    csr_sha256      TEXT NOT NULL,
    csr             BYTEA NOT NULL,
    requester       TEXT NOT NULL,
    identifiers     TEXT NOT NULL DEFAULT 'null', -- JSON, null = names from the CSR
    source          TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'issued')),
    cert_issuer_id  TEXT NOT NULL DEFAULT '',
    cert_serial     TEXT NOT NULL DEFAULT '',
    decided_by      TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX est_pending_csr ON est_pending (label, csr_sha256);
