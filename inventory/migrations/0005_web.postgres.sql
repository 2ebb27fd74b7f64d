-- MICA inventory schema, version 5 (PostgreSQL): the lifecycle model the
-- security team works with, discovery, and web/API access control.
--
-- Certificates gain ownership labels (owner, team, environment), free
-- tags, and the key size and signature algorithm the "weak" filter needs
-- without parsing DER. Discovery keeps a certificate apart from the places
-- it is installed: discovered_certificates holds each distinct certificate
-- seen (by SHA-256 fingerprint; cert_id links it to MICA's own record, NULL
-- means external), installations one row per (fingerprint, location).

ALTER TABLE certificates ADD COLUMN owner       TEXT    NOT NULL DEFAULT '';
ALTER TABLE certificates ADD COLUMN team        TEXT    NOT NULL DEFAULT '';
ALTER TABLE certificates ADD COLUMN environment TEXT    NOT NULL DEFAULT '';
ALTER TABLE certificates ADD COLUMN key_bits    INTEGER NOT NULL DEFAULT 0;
ALTER TABLE certificates ADD COLUMN sig_alg     TEXT    NOT NULL DEFAULT '';

-- (column, id) so "filter by X, newest first, 100 rows" walks one index.
CREATE INDEX certificates_owner       ON certificates (owner, id);
CREATE INDEX certificates_team        ON certificates (team, environment, id);
CREATE INDEX certificates_sig_alg     ON certificates (sig_alg);
CREATE INDEX certificates_created_at  ON certificates (created_at);
CREATE INDEX certificates_issuer_id   ON certificates (issuer_id, id);
CREATE INDEX certificates_protocol_id ON certificates (protocol, id);
CREATE INDEX certificates_weak_key    ON certificates (key_type, key_bits);

CREATE TABLE certificate_tags (
    cert_id BIGINT NOT NULL REFERENCES certificates (id) ON DELETE CASCADE,
    tag     TEXT    NOT NULL,
    PRIMARY KEY (cert_id, tag)
);
CREATE INDEX certificate_tags_tag ON certificate_tags (tag, cert_id);

CREATE TABLE discovered_certificates (
    fingerprint_sha256 TEXT    PRIMARY KEY,
    cert_id            BIGINT REFERENCES certificates (id),
    subject            TEXT    NOT NULL DEFAULT '',
    issuer             TEXT    NOT NULL DEFAULT '',
    serial             TEXT    NOT NULL DEFAULT '',
    common_name        TEXT    NOT NULL DEFAULT '',
    not_before         TIMESTAMPTZ    NOT NULL,
    not_after          TIMESTAMPTZ    NOT NULL,
    key_type           TEXT    NOT NULL DEFAULT '',
    key_bits           INTEGER NOT NULL DEFAULT 0,
    sig_alg            TEXT    NOT NULL DEFAULT '',
    search_text        TEXT    NOT NULL DEFAULT '',
    der                BYTEA   NOT NULL,
    first_seen         TIMESTAMPTZ    NOT NULL,
    last_seen          TIMESTAMPTZ    NOT NULL
);
CREATE INDEX discovered_certificates_cert ON discovered_certificates (cert_id);
CREATE INDEX discovered_certificates_last ON discovered_certificates (last_seen);

CREATE TABLE installations (
    id                 BIGSERIAL PRIMARY KEY,
    fingerprint_sha256 TEXT    NOT NULL REFERENCES discovered_certificates (fingerprint_sha256),
    kind               TEXT    NOT NULL CHECK (kind IN ('tls', 'file', 'agent')),
    location           TEXT    NOT NULL, -- host:port, or host:/path for files
    chain_pos          INTEGER NOT NULL DEFAULT 0, -- 0 = leaf presented
    job_id             BIGINT NOT NULL DEFAULT 0,
    first_seen         TIMESTAMPTZ    NOT NULL,
    last_seen          TIMESTAMPTZ    NOT NULL,
    UNIQUE (fingerprint_sha256, location)
);
CREATE INDEX installations_seen ON installations (fingerprint_sha256, last_seen);
CREATE INDEX installations_last ON installations (last_seen);

-- Discovery jobs: a replica claims a queued job with a conditional UPDATE
-- (state = 'queued'), so exactly one replica runs it.
CREATE TABLE discovery_jobs (
    id          BIGSERIAL PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('scan', 'files')),
    spec        TEXT    NOT NULL DEFAULT '{}', -- JSON: targets, ports, paths
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    claimed_by  TEXT    NOT NULL DEFAULT '',
    found       INTEGER NOT NULL DEFAULT 0,
    errors      TEXT    NOT NULL DEFAULT '[]', -- JSON list of {target, error}
    created_by  TEXT    NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ    NOT NULL,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX discovery_jobs_state ON discovery_jobs (state, id);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL, -- hex SHA-256 of the 256-bit secret
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer', 'auditor')),
    label         TEXT NOT NULL DEFAULT '',
    created_by    TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX certificates_not_after_id ON certificates (not_after, id);

-- Web UI users (bcrypt hashes, made by the web package) and server-side
-- sessions (only a SHA-256 of the cookie value is stored), shared by all
-- replicas. failed_logins/locked_until throttle password guessing.
CREATE TABLE users (
    name          TEXT        PRIMARY KEY,
    password_hash TEXT        NOT NULL,
    role          TEXT        NOT NULL CHECK (role IN ('admin', 'operator', 'viewer', 'auditor')),
    failed_logins INTEGER     NOT NULL DEFAULT 0,
    locked_until  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE sessions (
    id_sha256  TEXT        PRIMARY KEY,
    user_name  TEXT        NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
