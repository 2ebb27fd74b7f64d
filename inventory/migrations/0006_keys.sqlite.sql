-- MICA inventory schema, version 6 (sqlite): the key inventory.
--
-- One row per key MICA holds or held (NIST SP 800-57 Part 1 §8: a key's
-- whole life, from pre-activation to destruction). The public key stays
-- after destruction so what the key signed can still be verified. Usage
-- counters are written as increments (signatures = signatures + n) so
-- several replicas can flush into one row without losing counts.

CREATE TABLE keys (
    id                   TEXT PRIMARY KEY,
    class                TEXT NOT NULL,               -- root, issuing, ocsp-responder, pool-seal, eab-hmac, …
    backend              TEXT NOT NULL,               -- pkcs11, softkms, offline
    uri                  TEXT NOT NULL DEFAULT '',    -- '' for a key that is offline
    algorithm            TEXT NOT NULL,               -- EC-P256, RSA-3072, …
    issuer_id            TEXT NOT NULL DEFAULT '',    -- the issuer whose certificate binds this key
    public_key           BLOB,                        -- DER SubjectPublicKeyInfo
    spki_sha256          TEXT NOT NULL DEFAULT '',
    protection           TEXT NOT NULL DEFAULT '{}',  -- JSON hsm.Protection as read from the backend
    status               TEXT NOT NULL CHECK (status IN ('pre-activation', 'active', 'retired', 'destroyed')),
    cryptoperiod_seconds INTEGER NOT NULL DEFAULT 0,     -- 0: no policy
    created_at           TEXT NOT NULL,
    activate_at          TEXT NOT NULL,
    rotation_due_at      TEXT,
    retired_at           TEXT,
    destroyed_at         TEXT,
    first_used_at        TEXT,
    last_used_at         TEXT,
    signatures           INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX keys_uri ON keys (uri);
CREATE INDEX keys_issuer ON keys (issuer_id);
