-- MICA inventory schema, version 12 (sqlite): durable "a new CRL is needed".
--
-- A revocation marks its issuer here in the transaction that revokes, so
-- the intent survives the process that revoked: any replica's revocation
-- worker signs the CRL and then clears the mark, but only if generation
-- is still the one it read before signing (a revocation committed while
-- the CRL was being signed bumps generation and keeps the mark). since is
-- when the issuer first became dirty, for the batching delay and metrics.
CREATE TABLE crl_dirty (
    issuer_id  TEXT    PRIMARY KEY REFERENCES issuers (id),
    since      TEXT    NOT NULL,
    generation INTEGER NOT NULL
) STRICT;
