-- MICA inventory schema, version 12 (postgres): durable "a new CRL is
-- needed". Same shape as 0012_crl_dirty.sqlite.sql; see there.
CREATE TABLE crl_dirty (
    issuer_id  TEXT        PRIMARY KEY REFERENCES issuers (id),
    since      TIMESTAMPTZ NOT NULL,
    generation BIGINT      NOT NULL
);
