-- MICA inventory schema, version 13 (sqlite): nonces without a write per
-- nonce issued.
--
-- A nonce is now a MAC-protected value (acme/nonce.go), so issuing one
-- writes nothing and acme_nonces goes. acme_nonce_key holds the one MAC
-- key every replica shares: the first replica to start inserts its random
-- candidate, the others read it (per-epoch keys are derived from it).
-- acme_used_nonces is the serialization point that makes redemption
-- exactly once across replicas: a redemption is the INSERT of the nonce,
-- and the primary key refuses the second one. Rows are swept after the
-- nonce lifetime, when the MAC check alone refuses the nonce.
DROP TABLE acme_nonces;

CREATE TABLE acme_nonce_key (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    key         BLOB    NOT NULL,
    created_at  TEXT    NOT NULL
) STRICT;

CREATE TABLE acme_used_nonces (
    id          TEXT PRIMARY KEY,
    expires_at  TEXT NOT NULL
) STRICT;
CREATE INDEX acme_used_nonces_expires ON acme_used_nonces (expires_at);
