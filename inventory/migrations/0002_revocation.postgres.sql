-- MICA inventory schema, version 2 (PostgreSQL). Same shape as
-- 0002_revocation.sqlite.sql; see there for what each table is for.

CREATE TABLE crl_numbers (
    issuer_id TEXT   PRIMARY KEY REFERENCES issuers (id),
    number    BIGINT NOT NULL
);

CREATE TABLE crls (
    issuer_id   TEXT        NOT NULL REFERENCES issuers (id),
    shard       INTEGER     NOT NULL,
    delta       INTEGER     NOT NULL CHECK (delta IN (0, 1)),
    number      BIGINT      NOT NULL,
    this_update TIMESTAMPTZ NOT NULL,
    next_update TIMESTAMPTZ NOT NULL,
    entries     BIGINT      NOT NULL,
    sha256      TEXT        NOT NULL,
    der         BYTEA       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer_id, shard, delta)
);

CREATE TABLE ocsp_responses (
    issuer_id   TEXT        NOT NULL REFERENCES issuers (id),
    serial      TEXT        NOT NULL,
    status      TEXT        NOT NULL,
    this_update TIMESTAMPTZ NOT NULL,
    next_update TIMESTAMPTZ NOT NULL,
    der         BYTEA       NOT NULL,
    PRIMARY KEY (issuer_id, serial)
);

CREATE INDEX ocsp_responses_next_update ON ocsp_responses (next_update);

CREATE TABLE blocked_keys (
    pubkey_sha256 TEXT        PRIMARY KEY,
    reason        TEXT        NOT NULL DEFAULT '',
    actor         TEXT        NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE job_leases (
    name       TEXT        PRIMARY KEY,
    holder     TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX certificates_issuer_state ON certificates (issuer_id, state, not_after);
