package inventory

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Installation kinds: where a sighting came from.
const (
	KindTLS   = "tls"   // presented in a TLS handshake at host:port
	KindFile  = "file"  // found in a file (host:/path)
	KindAgent = "agent" // reported by a host agent
)

// Sighting is one certificate seen at one place: the upsert key is
// (fingerprint, Location), so scanning the same server twice refreshes
// LastSeen instead of adding a row.
type Sighting struct {
	DER      []byte
	Kind     string
	Location string
	ChainPos int // 0 for the leaf a server presented, 1.. for the chain
	JobID    int64
	At       time.Time // zero means now
}

// Discovered is a distinct certificate found by discovery. CertID is
// MICA's own record when the fingerprint matches one (0 means external).
type Discovered struct {
	FingerprintSHA256 string    `db:"fingerprint_sha256" json:"fingerprint_sha256"`
	CertID            int64     `db:"-" json:"cert_id,omitempty"`
	External          bool      `db:"-" json:"external"`
	Subject           string    `db:"subject" json:"subject"`
	Issuer            string    `db:"issuer" json:"issuer"`
	Serial            string    `db:"serial" json:"serial"`
	CommonName        string    `db:"common_name" json:"common_name"`
	NotBefore         time.Time `db:"-" json:"not_before"`
	NotAfter          time.Time `db:"-" json:"not_after"`
	KeyType           string    `db:"key_type" json:"key_type"`
	KeyBits           int       `db:"key_bits" json:"key_bits"`
	SigAlg            string    `db:"sig_alg" json:"sig_alg"`
	FirstSeen         time.Time `db:"-" json:"first_seen"`
	LastSeen          time.Time `db:"-" json:"last_seen"`
}

// Installation is one place a certificate was seen.
type Installation struct {
	ID                int64     `json:"id"`
	FingerprintSHA256 string    `json:"fingerprint_sha256"`
	Kind              string    `json:"kind"`
	Location          string    `json:"location"`
	ChainPos          int       `json:"chain_pos"`
	JobID             int64     `json:"job_id,omitempty"`
	FirstSeen         time.Time `json:"first_seen"`
	LastSeen          time.Time `json:"last_seen"`
}

// RecordSighting stores that a certificate was seen at a place, matching
// it to MICA's record by SHA-256 fingerprint. It returns the stored
// Discovered (External false when MICA issued it).
//
// Errors: ErrInvalid for DER that does not parse, an unknown kind or an
// empty location.
func (s *Store) RecordSighting(ctx context.Context, sg Sighting) (*Discovered, error) {
	x, err := x509.ParseCertificate(sg.DER)
	if err != nil {
		return nil, fmt.Errorf("%w: sighting at %s: DER does not parse: %v", ErrInvalid, truncateForError(sg.Location), err)
	}
	switch sg.Kind {
	case KindTLS, KindFile, KindAgent:
	default:
		return nil, fmt.Errorf("%w: unknown installation kind %q", ErrInvalid, truncateForError(sg.Kind))
	}
	if sg.Location == "" || checkText("location", sg.Location) != nil {
		return nil, fmt.Errorf("%w: sighting needs a location", ErrInvalid)
	}
	at := sg.At
	if at.IsZero() {
		at = s.now()
	}
	at = normTime(at)
	sum := sha256.Sum256(sg.DER)
	fp := hex.EncodeToString(sum[:])
	d := &Discovered{
		FingerprintSHA256: fp, Subject: cleanText(x.Subject.String()), Issuer: cleanText(x.Issuer.String()),
		Serial: x.SerialNumber.Text(16), CommonName: cleanText(x.Subject.CommonName),
		NotBefore: normTime(x.NotBefore), NotAfter: normTime(x.NotAfter), KeyType: KeyTypeOf(x), KeyBits: KeyBits(x),
		SigAlg: x.SignatureAlgorithm.String(), FirstSeen: at, LastSeen: at,
	}
	search := searchText(d.CommonName, d.Subject, append(append([]string{}, x.DNSNames...), d.Issuer))
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		var certID sql.NullInt64
		err := tx.GetContext(ctx, &certID, s.q(`SELECT id FROM certificates WHERE fingerprint_sha256 = ? LIMIT 1`), fp)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("inventory: match sighting: %w", err)
		}
		d.CertID, d.External = certID.Int64, !certID.Valid
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO discovered_certificates
			(fingerprint_sha256, cert_id, subject, issuer, serial, common_name, not_before, not_after, key_type,
			 key_bits, sig_alg, search_text, der, first_seen, last_seen)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (fingerprint_sha256) DO UPDATE SET last_seen = excluded.last_seen, cert_id = excluded.cert_id`),
			fp, certID, d.Subject, d.Issuer, d.Serial, d.CommonName, s.timeArg(d.NotBefore), s.timeArg(d.NotAfter),
			d.KeyType, d.KeyBits, d.SigAlg, search, sg.DER, s.timeArg(at), s.timeArg(at)); err != nil {
			return fmt.Errorf("inventory: store discovered certificate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO installations
			(fingerprint_sha256, kind, location, chain_pos, job_id, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (fingerprint_sha256, location) DO UPDATE SET last_seen = excluded.last_seen,
			job_id = excluded.job_id, kind = excluded.kind, chain_pos = excluded.chain_pos`),
			fp, sg.Kind, sg.Location, sg.ChainPos, sg.JobID, s.timeArg(at), s.timeArg(at)); err != nil {
			return fmt.Errorf("inventory: store installation: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Installations lists where the certificate with this SHA-256 fingerprint
// was seen, most recently seen first.
func (s *Store) Installations(ctx context.Context, fingerprint string) ([]Installation, error) {
	fp, err := normalizeDigest("fingerprint", fingerprint)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		ID        int64  `db:"id"`
		FP        string `db:"fingerprint_sha256"`
		Kind      string `db:"kind"`
		Location  string `db:"location"`
		ChainPos  int    `db:"chain_pos"`
		JobID     int64  `db:"job_id"`
		FirstSeen dbTime `db:"first_seen"`
		LastSeen  dbTime `db:"last_seen"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.q(`SELECT id, fingerprint_sha256, kind, location, chain_pos, job_id,
		first_seen, last_seen FROM installations WHERE fingerprint_sha256 = ? ORDER BY last_seen DESC, id DESC LIMIT 1000`), fp); err != nil {
		return nil, fmt.Errorf("inventory: list installations: %w", err)
	}
	out := make([]Installation, len(rows))
	for i, r := range rows {
		out[i] = Installation{ID: r.ID, FingerprintSHA256: r.FP, Kind: r.Kind, Location: r.Location, ChainPos: r.ChainPos,
			JobID: r.JobID, FirstSeen: r.FirstSeen.Time, LastSeen: r.LastSeen.Time}
	}
	return out, nil
}

// DiscoveredFilter selects discovered certificates (most recently seen
// first, at most Limit, capped at 1000).
type DiscoveredFilter struct {
	External bool   // only certificates MICA did not issue
	Text     string // substring of subject, issuer, DNS names
	Limit    int
}

// FindDiscovered lists discovered certificates matching f, most recently
// seen first.
func (s *Store) FindDiscovered(ctx context.Context, f DiscoveredFilter) ([]Discovered, error) {
	var w where
	if f.External {
		w.add(`cert_id IS NULL`)
	}
	if f.Text != "" {
		w.add(`search_text LIKE ? ESCAPE '\'`, "%"+escapeLike(strings.ToLower(f.Text))+"%")
	}
	var rows []struct {
		Discovered
		CertID    sql.NullInt64 `db:"cert_id"`
		NotBefore dbTime        `db:"not_before"`
		NotAfter  dbTime        `db:"not_after"`
		FirstSeen dbTime        `db:"first_seen"`
		LastSeen  dbTime        `db:"last_seen"`
	}
	q := `SELECT fingerprint_sha256, cert_id, subject, issuer, serial, common_name, not_before, not_after, key_type,
		key_bits, sig_alg, first_seen, last_seen FROM discovered_certificates` + w.sql() +
		fmt.Sprintf(` ORDER BY last_seen DESC, fingerprint_sha256 LIMIT %d`, clampLimit(f.Limit))
	if err := s.db.SelectContext(ctx, &rows, s.q(q), w.args...); err != nil {
		return nil, fmt.Errorf("inventory: list discovered certificates: %w", err)
	}
	out := make([]Discovered, len(rows))
	for i, r := range rows {
		d := r.Discovered
		d.CertID, d.External = r.CertID.Int64, !r.CertID.Valid
		d.NotBefore, d.NotAfter, d.FirstSeen, d.LastSeen = r.NotBefore.Time, r.NotAfter.Time, r.FirstSeen.Time, r.LastSeen.Time
		out[i] = d
	}
	return out, nil
}

// CertificateByFingerprint returns MICA's record of the certificate with
// this SHA-256 fingerprint (of the DER). Errors: ErrNotFound.
func (s *Store) CertificateByFingerprint(ctx context.Context, fingerprint string) (*Certificate, error) {
	fp, err := normalizeDigest("fingerprint", fingerprint)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate with fingerprint", ErrNotFound)
	}
	var r certRow
	err = s.db.GetContext(ctx, &r, s.q(`SELECT `+certColumns+` FROM certificates WHERE fingerprint_sha256 = ? LIMIT 1`), fp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: certificate with fingerprint %s", ErrNotFound, fp)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: find certificate by fingerprint: %w", err)
	}
	c := r.cert()
	return &c, nil
}
