-- Search at scale (1,000,000 certificates): free text through an FTS5
-- trigram index, the weak filter and the seen-since filters through
-- columns computed at write time, and an index per sortable column.

-- Free text: a trigram index over the same text LIKE matched before
-- (search_text, serial, fingerprint), so a substring of three or more
-- characters is an index lookup. External content: the text lives only in
-- certificates; the triggers below keep the index in step with every
-- insert, update and delete, whichever code path writes the row.
CREATE VIRTUAL TABLE certificates_fts USING fts5(
    search_text, serial, fingerprint_sha256,
    content = 'certificates', content_rowid = 'id', tokenize = 'trigram');
INSERT INTO certificates_fts (certificates_fts) VALUES ('rebuild');

CREATE TRIGGER certificates_fts_insert AFTER INSERT ON certificates BEGIN
    INSERT INTO certificates_fts (rowid, search_text, serial, fingerprint_sha256)
        VALUES (new.id, new.search_text, new.serial, new.fingerprint_sha256);
END;
CREATE TRIGGER certificates_fts_delete AFTER DELETE ON certificates BEGIN
    INSERT INTO certificates_fts (certificates_fts, rowid, search_text, serial, fingerprint_sha256)
        VALUES ('delete', old.id, old.search_text, old.serial, old.fingerprint_sha256);
END;
CREATE TRIGGER certificates_fts_update AFTER UPDATE OF search_text, serial, fingerprint_sha256 ON certificates BEGIN
    INSERT INTO certificates_fts (certificates_fts, rowid, search_text, serial, fingerprint_sha256)
        VALUES ('delete', old.id, old.search_text, old.serial, old.fingerprint_sha256);
    INSERT INTO certificates_fts (rowid, search_text, serial, fingerprint_sha256)
        VALUES (new.id, new.search_text, new.serial, new.fingerprint_sha256);
END;

-- last_seen: the latest last_seen of any installation of the certificate
-- (NULL: never seen), kept by triggers on installations. "Seen since T"
-- is then last_seen >= T, and "expired but still deployed" is
-- last_seen > not_after, both on one row.
ALTER TABLE certificates ADD COLUMN last_seen TEXT;
UPDATE certificates SET last_seen = (SELECT MAX(i.last_seen) FROM installations i
    WHERE i.fingerprint_sha256 = certificates.fingerprint_sha256)
    WHERE fingerprint_sha256 IN (SELECT fingerprint_sha256 FROM installations);

-- Each recomputes the maximum (a sighting may also move last_seen back)
-- and writes only when it changed, so re-seeing a certificate at the same
-- time does not rewrite its row.
CREATE TRIGGER installations_seen_insert AFTER INSERT ON installations BEGIN
    UPDATE certificates SET last_seen = (SELECT MAX(last_seen) FROM installations
        WHERE fingerprint_sha256 = new.fingerprint_sha256) WHERE fingerprint_sha256 = new.fingerprint_sha256
        AND last_seen IS NOT (SELECT MAX(last_seen) FROM installations WHERE fingerprint_sha256 = new.fingerprint_sha256);
END;
CREATE TRIGGER installations_seen_update AFTER UPDATE OF last_seen, fingerprint_sha256 ON installations BEGIN
    UPDATE certificates SET last_seen = (SELECT MAX(last_seen) FROM installations
        WHERE fingerprint_sha256 = new.fingerprint_sha256) WHERE fingerprint_sha256 = new.fingerprint_sha256
        AND last_seen IS NOT (SELECT MAX(last_seen) FROM installations WHERE fingerprint_sha256 = new.fingerprint_sha256);
    UPDATE certificates SET last_seen = (SELECT MAX(last_seen) FROM installations
        WHERE fingerprint_sha256 = old.fingerprint_sha256)
        WHERE fingerprint_sha256 = old.fingerprint_sha256 AND old.fingerprint_sha256 <> new.fingerprint_sha256;
END;
CREATE TRIGGER installations_seen_delete AFTER DELETE ON installations BEGIN
    UPDATE certificates SET last_seen = (SELECT MAX(last_seen) FROM installations
        WHERE fingerprint_sha256 = old.fingerprint_sha256) WHERE fingerprint_sha256 = old.fingerprint_sha256;
END;
-- A certificate whose fingerprint is set after it was already seen
-- (normally impossible: the DER is stored before anyone can deploy it).
CREATE TRIGGER certificates_seen_fingerprint AFTER UPDATE OF fingerprint_sha256 ON certificates
WHEN new.fingerprint_sha256 <> '' BEGIN
    UPDATE certificates SET last_seen = (SELECT MAX(last_seen) FROM installations
        WHERE fingerprint_sha256 = new.fingerprint_sha256) WHERE id = new.id;
END;
-- Partial: most certificates are never seen, and a NULL-heavy index would
-- make the planner misjudge every range on it.
CREATE INDEX certificates_last_seen ON certificates (last_seen) WHERE last_seen IS NOT NULL;

-- weak: 1 for an RSA key under 2048 bits, a SHA-1/MD5/MD2 signature, or a
-- certificate seen deployed after it expired. Generated, so it can never
-- disagree with the columns it reads, and needs no backfill; the partial
-- index holds only the weak rows. Keep in step with weakCryptoSQL in search.go.
ALTER TABLE certificates ADD COLUMN weak INTEGER GENERATED ALWAYS AS (CASE
    WHEN substr(key_type, 1, 4) = 'RSA-' AND key_bits > 0 AND key_bits < 2048 THEN 1
    WHEN sig_alg IN ('SHA1-RSA', 'DSA-SHA1', 'ECDSA-SHA1', 'MD5-RSA', 'MD2-RSA') THEN 1
    WHEN last_seen IS NOT NULL AND last_seen > not_after THEN 1
    ELSE 0 END) VIRTUAL;
CREATE INDEX certificates_weak ON certificates (id) WHERE weak = 1;

-- Sorting: every sortable column has an index ending in id (SQLite
-- appends the rowid to every index, so (x) already means (x, id)).
CREATE INDEX certificates_team_id        ON certificates (team);
CREATE INDEX certificates_environment_id ON certificates (environment);
CREATE INDEX certificates_key_type_id    ON certificates (key_type);
