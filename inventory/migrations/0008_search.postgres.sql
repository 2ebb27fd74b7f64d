-- Search at scale (1,000,000 certificates): free text through pg_trgm GIN
-- indexes, the weak filter and the seen-since filters through columns
-- computed at write time, and an index per sortable column.

-- Free text: pg_trgm makes LIKE '%needle%' an index lookup for needles of
-- three or more characters. It is a trusted extension (PostgreSQL 13+):
-- a database owner may create it without superuser rights. If it cannot
-- be created (older server, restricted role, not installed), the
-- migration still succeeds and free text falls back to a sequential scan;
-- install it later and the next start does not recreate the indexes, so
-- run the CREATE INDEX statements below by hand (docs/inventory.md).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        BEGIN
            -- In public when we may, so one installation serves every
            -- schema of the database.
            IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public')
                AND has_schema_privilege('public', 'CREATE') THEN
                CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
            ELSE
                CREATE EXTENSION IF NOT EXISTS pg_trgm;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'mica: pg_trgm unavailable (%), free-text search will scan', SQLERRM;
        END;
    END IF;
END $$;

DO $$
DECLARE
    ns text;
BEGIN
    SELECT n.nspname INTO ns FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm';
    IF ns IS NOT NULL THEN
        EXECUTE format('CREATE INDEX certificates_search_trgm ON certificates USING gin (search_text %I.gin_trgm_ops)', ns);
        EXECUTE format('CREATE INDEX certificates_serial_trgm ON certificates USING gin (serial %I.gin_trgm_ops)', ns);
        EXECUTE format('CREATE INDEX certificates_fingerprint_trgm ON certificates USING gin (fingerprint_sha256 %I.gin_trgm_ops)', ns);
    END IF;
END $$;

-- last_seen: the latest last_seen of any installation of the certificate
-- (NULL: never seen), kept by triggers on installations. "Seen since T"
-- is then last_seen >= T, and "expired but still deployed" is
-- last_seen > not_after, both on one row.
ALTER TABLE certificates ADD COLUMN last_seen TIMESTAMPTZ;
UPDATE certificates c SET last_seen = m.last_seen
    FROM (SELECT fingerprint_sha256, MAX(last_seen) AS last_seen FROM installations GROUP BY fingerprint_sha256) m
    WHERE c.fingerprint_sha256 = m.fingerprint_sha256;

-- search_path is pinned to the schema MICA migrated, so a trigger fired
-- from any session updates this schema's certificates.
-- Recomputes the maximum (a sighting may also move last_seen back) and
-- writes only when it changed, so re-seeing a certificate at the same time
-- does not rewrite its row and every index on it.
CREATE FUNCTION mica_certificate_last_seen(fp TEXT) RETURNS void LANGUAGE sql SET search_path FROM CURRENT AS $$
    UPDATE certificates c SET last_seen = m.last_seen
        FROM (SELECT MAX(last_seen) AS last_seen FROM installations WHERE fingerprint_sha256 = fp) m
        WHERE c.fingerprint_sha256 = fp AND c.last_seen IS DISTINCT FROM m.last_seen;
$$;
CREATE FUNCTION mica_installations_seen() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM mica_certificate_last_seen(NEW.fingerprint_sha256);
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.fingerprint_sha256 <> NEW.fingerprint_sha256) THEN
        PERFORM mica_certificate_last_seen(OLD.fingerprint_sha256);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER installations_seen AFTER INSERT OR DELETE OR UPDATE OF last_seen, fingerprint_sha256 ON installations
    FOR EACH ROW EXECUTE FUNCTION mica_installations_seen();
-- A certificate whose fingerprint is set after it was already seen
-- (normally impossible: the DER is stored before anyone can deploy it).
CREATE FUNCTION mica_certificates_seen() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.fingerprint_sha256 <> '' THEN
        PERFORM mica_certificate_last_seen(NEW.fingerprint_sha256);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER certificates_seen AFTER UPDATE OF fingerprint_sha256 ON certificates
    FOR EACH ROW EXECUTE FUNCTION mica_certificates_seen();
-- Partial: most certificates are never seen, and a NULL-heavy index would
-- make the planner misjudge every range on it.
CREATE INDEX certificates_last_seen ON certificates (last_seen) WHERE last_seen IS NOT NULL;

-- weak: 1 for an RSA key under 2048 bits, a SHA-1/MD5/MD2 signature, or a
-- certificate seen deployed after it expired. Generated (and so
-- backfilled by this ALTER), it can never disagree with the columns it
-- reads; the partial index holds only the weak rows. Keep in step with
-- weakCryptoSQL in search.go.
ALTER TABLE certificates ADD COLUMN weak SMALLINT GENERATED ALWAYS AS (CASE
    WHEN substr(key_type, 1, 4) = 'RSA-' AND key_bits > 0 AND key_bits < 2048 THEN 1
    WHEN sig_alg IN ('SHA1-RSA', 'DSA-SHA1', 'ECDSA-SHA1', 'MD5-RSA', 'MD2-RSA') THEN 1
    WHEN last_seen IS NOT NULL AND last_seen > not_after THEN 1
    ELSE 0 END) STORED;
CREATE INDEX certificates_weak ON certificates (id) WHERE weak = 1;

-- Sorting: every sortable column has an index ending in id, so a sorted
-- page and its keyset cursor are one index range scan.
CREATE INDEX certificates_cn_id          ON certificates (common_name, id);
CREATE INDEX certificates_serial_id      ON certificates (serial, id);
CREATE INDEX certificates_state_id       ON certificates (state, id);
CREATE INDEX certificates_team_id        ON certificates (team, id);
CREATE INDEX certificates_environment_id ON certificates (environment, id);
CREATE INDEX certificates_profile_id     ON certificates (profile, id);
CREATE INDEX certificates_key_type_id    ON certificates (key_type, id);
