-- MICA inventory schema, version 13 (postgres): nonces without a write per
-- nonce issued. Same shape as 0013_nonces.sqlite.sql; see there.
DROP TABLE acme_nonces;

CREATE TABLE acme_nonce_key (
    id          INTEGER     PRIMARY KEY CHECK (id = 1),
    key         BYTEA       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE acme_used_nonces (
    id          TEXT        PRIMARY KEY,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX acme_used_nonces_expires ON acme_used_nonces (expires_at);
