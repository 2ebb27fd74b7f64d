-- MICA inventory schema, version 3 (PostgreSQL): the ACME server's state.
--
-- Everything an ACME replica needs lives here so any replica can answer any
-- request: accounts, single-use nonces, orders with their authorizations and
-- challenges, and EAB keys. IDs are random URL-safe strings chosen by the
-- acme package (they appear in URLs). JSON columns are TEXT written and read
-- only by the store. Times are TIMESTAMPTZ.

CREATE TABLE acme_accounts (
    id          TEXT PRIMARY KEY,
    thumbprint  TEXT NOT NULL UNIQUE, -- RFC 7638 SHA-256 of the account key
    jwk         TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('valid', 'deactivated', 'revoked')),
    contact     TEXT NOT NULL DEFAULT '[]',
    eab_kid     TEXT NOT NULL DEFAULT '',
    profile     TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL DEFAULT '', -- remote IP at creation (per-IP limits)
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX acme_accounts_source ON acme_accounts (source, created_at);

-- A nonce is valid while its row exists; redeeming it deletes the row, so
-- exactly one request on any replica can use it.
CREATE TABLE acme_nonces (
    value       TEXT PRIMARY KEY,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX acme_nonces_expires ON acme_nonces (expires_at);

CREATE TABLE acme_orders (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES acme_accounts (id),
    profile         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'processing', 'valid', 'invalid')),
    identifiers     TEXT NOT NULL, -- JSON [{"type","value"}]
    not_before      TIMESTAMPTZ,
    not_after       TIMESTAMPTZ,
    expires_at      TIMESTAMPTZ NOT NULL,
    error           TEXT NOT NULL DEFAULT '', -- JSON problem document
    cert_issuer_id  TEXT NOT NULL DEFAULT '',
    cert_serial     TEXT NOT NULL DEFAULT '',
    replaces        TEXT NOT NULL DEFAULT '',
    source          TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX acme_orders_account ON acme_orders (account_id, created_at);
CREATE INDEX acme_orders_source ON acme_orders (source, created_at);
CREATE INDEX acme_orders_cert ON acme_orders (cert_issuer_id, cert_serial);

CREATE TABLE acme_authzs (
    id          TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL REFERENCES acme_orders (id),
    account_id  TEXT NOT NULL REFERENCES acme_accounts (id),
    id_type     TEXT NOT NULL CHECK (id_type IN ('dns', 'ip')),
    id_value    TEXT NOT NULL,
    wildcard    BOOLEAN NOT NULL DEFAULT FALSE,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'valid', 'invalid', 'deactivated', 'expired', 'revoked')),
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX acme_authzs_order ON acme_authzs (order_id);
CREATE INDEX acme_authzs_account ON acme_authzs (account_id, id_value);

CREATE TABLE acme_challenges (
    id            TEXT PRIMARY KEY,
    authz_id      TEXT NOT NULL REFERENCES acme_authzs (id),
    type          TEXT NOT NULL,
    token         TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'valid', 'invalid')),
    validated_at  TIMESTAMPTZ,
    error         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX acme_challenges_authz ON acme_challenges (authz_id);

-- External account binding keys. The HMAC key itself is never stored: the
-- acme package keeps it sealed (AES-GCM under a key derived from the CA's
-- secret), so a database dump alone does not let anyone bind accounts.
CREATE TABLE acme_eab_keys (
    kid         TEXT PRIMARY KEY,
    profile     TEXT NOT NULL,
    sealed_key  BYTEA NOT NULL,
    account_id  TEXT NOT NULL DEFAULT '', -- set once used; a key binds one account
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
