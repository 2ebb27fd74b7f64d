package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jmoiron/sqlx"
)

type certRow struct {
	ID                  int64  `db:"id"`
	IssuerID            string `db:"issuer_id"`
	Serial              string `db:"serial"`
	Subject             string `db:"subject"`
	CommonName          string `db:"common_name"`
	NotBefore           dbTime `db:"not_before"`
	NotAfter            dbTime `db:"not_after"`
	PublicKeySHA256     string `db:"pubkey_sha256"`
	KeyType             string `db:"key_type"`
	Profile             string `db:"profile"`
	Requester           string `db:"requester"`
	Protocol            string `db:"protocol"`
	State               string `db:"state"`
	RevocationReason    string `db:"revocation_reason"`
	RevokedAt           dbTime `db:"revoked_at"`
	SupersededBy        string `db:"superseded_by"`
	Predecessor         string `db:"predecessor"`
	PredecessorIssuerID string `db:"predecessor_issuer_id"`
	FingerprintSHA256   string `db:"fingerprint_sha256"`
	DER                 []byte `db:"der"`
	CreatedAt           dbTime `db:"created_at"`
	UpdatedAt           dbTime `db:"updated_at"`
}

const certColumns = `id, issuer_id, serial, subject, common_name, not_before, not_after, pubkey_sha256,
	key_type, profile, requester, protocol, state, revocation_reason, revoked_at, superseded_by,
	predecessor, predecessor_issuer_id, fingerprint_sha256, der, created_at, updated_at`

func (r *certRow) cert() Certificate {
	return Certificate{
		ID: r.ID, IssuerID: r.IssuerID, Serial: r.Serial, Subject: r.Subject, CommonName: r.CommonName,
		NotBefore: r.NotBefore.Time, NotAfter: r.NotAfter.Time, PublicKeySHA256: r.PublicKeySHA256,
		KeyType: r.KeyType, Profile: r.Profile, Requester: r.Requester, Protocol: r.Protocol,
		State: State(r.State), RevocationReason: r.RevocationReason, RevokedAt: r.RevokedAt.ptr(),
		SupersededBy: r.SupersededBy, Predecessor: r.Predecessor, PredecessorIssuerID: r.PredecessorIssuerID,
		FingerprintSHA256: r.FingerprintSHA256, DER: r.DER, CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time,
	}
}

// sanKindPattern: SANs are stored as "kind:value"; kinds are short
// lower-case words (dns, ip, uri, email …).
var sanKindPattern = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)

// splitSAN splits "dns:a.test" into ("dns", "a.test"); the kind is
// lower-cased, the value kept as given (URIs are case-sensitive).
func splitSAN(s string) (kind, value string, err error) {
	kind, value, ok := strings.Cut(s, ":")
	kind = strings.ToLower(strings.TrimSpace(kind))
	if !ok || !sanKindPattern.MatchString(kind) || value == "" {
		return "", "", fmt.Errorf("%w: SAN %q must look like kind:value (dns:, ip:, uri:, email:)", ErrInvalid, truncateForError(s))
	}
	if err := checkText("SAN", value); err != nil {
		return "", "", err
	}
	return kind, value, nil
}

// searchText builds the certificates.search_text column. Lower-casing
// happens here, in Go, for data and query alike, so matching is the same
// (Unicode-aware) on SQLite and PostgreSQL. Newlines separate the fields
// so a query can only span two of them if it contains a newline itself.
func searchText(commonName, subject string, sanValues []string) string {
	parts := append([]string{commonName, subject}, sanValues...)
	return strings.ToLower(strings.Join(parts, "\n"))
}

// ReserveCertificate records a certificate that is about to be signed: the
// "record" step of issuance, taken before the CA key is used, so the serial
// is claimed and the intent is on disk. The row is inserted with State
// requested; the serial is normalised and times truncated to microseconds.
// On success c is updated with ID, State, CreatedAt, UpdatedAt and the
// normalised values; fields only later steps may set (DER, fingerprint,
// revocation, SupersededBy) are ignored and zeroed. On error c is not
// modified.
//
// Errors: ErrDuplicate if (IssuerID, Serial) exists — the CA should retry
// with a fresh random serial; ErrNotFound if the issuer does not exist;
// ErrInvalid for a malformed serial, SAN, digest or text field, or a
// missing or inverted validity period.
func (s *Store) ReserveCertificate(ctx context.Context, c *Certificate) error {
	if c == nil {
		return fmt.Errorf("%w: nil certificate", ErrInvalid)
	}
	v := *c
	var err error
	if v.IssuerID == "" {
		return fmt.Errorf("%w: certificate has no issuer", ErrInvalid)
	}
	if v.Serial, err = NormalizeSerial(v.Serial); err != nil {
		return err
	}
	if v.NotAfter.IsZero() || !v.NotAfter.After(v.NotBefore) {
		return fmt.Errorf("%w: certificate %s: not_after must be set and after not_before", ErrInvalid, v.Serial)
	}
	if v.PublicKeySHA256 != "" {
		if v.PublicKeySHA256, err = normalizeDigest("public key SHA-256", v.PublicKeySHA256); err != nil {
			return err
		}
	}
	if v.Predecessor != "" {
		if v.Predecessor, err = NormalizeSerial(v.Predecessor); err != nil {
			return fmt.Errorf("predecessor: %w", err)
		}
		if v.PredecessorIssuerID == v.IssuerID {
			v.PredecessorIssuerID = "" // empty means "same issuer"; keep one spelling
		}
	} else {
		v.PredecessorIssuerID = ""
	}
	for field, val := range map[string]string{"subject": v.Subject, "common name": v.CommonName, "key type": v.KeyType,
		"profile": v.Profile, "requester": v.Requester, "protocol": v.Protocol, "issuer": v.IssuerID} {
		if err := checkText(field, val); err != nil {
			return err
		}
	}
	type san struct{ kind, value string }
	sans := make([]san, 0, len(v.SANs))
	for _, raw := range v.SANs {
		k, val, err := splitSAN(raw)
		if err != nil {
			return err
		}
		sans = append(sans, san{k, val})
	}
	v.SANs = make([]string, len(sans))
	values := make([]string, len(sans))
	for i, x := range sans {
		v.SANs[i] = x.kind + ":" + x.value
		values[i] = x.value
	}
	search := searchText(v.CommonName, v.Subject, values)
	now := normTime(s.now())
	v.State, v.CreatedAt, v.UpdatedAt = StateRequested, now, now
	v.NotBefore, v.NotAfter = normTime(v.NotBefore), normTime(v.NotAfter)
	v.DER, v.FingerprintSHA256, v.RevocationReason, v.RevokedAt, v.SupersededBy = nil, "", "", nil, ""

	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.QueryRowxContext(ctx, s.q(`INSERT INTO certificates
			(issuer_id, serial, subject, common_name, not_before, not_after, pubkey_sha256, key_type,
			 profile, requester, protocol, state, predecessor, predecessor_issuer_id, search_text, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			v.IssuerID, v.Serial, v.Subject, v.CommonName, s.timeArg(v.NotBefore), s.timeArg(v.NotAfter),
			v.PublicKeySHA256, v.KeyType, v.Profile, v.Requester, v.Protocol, string(v.State),
			v.Predecessor, v.PredecessorIssuerID, search, s.timeArg(v.CreatedAt), s.timeArg(v.UpdatedAt)).Scan(&v.ID)
		switch {
		case isUniqueViolation(err):
			return fmt.Errorf("%w: certificate %s/%s already exists", ErrDuplicate, v.IssuerID, v.Serial)
		case isForeignKeyViolation(err):
			return fmt.Errorf("%w: issuer %s", ErrNotFound, v.IssuerID)
		case err != nil:
			return fmt.Errorf("inventory: reserve certificate %s/%s: %w", v.IssuerID, v.Serial, err)
		}
		for i, x := range sans {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO certificate_sans (cert_id, pos, kind, value) VALUES (?, ?, ?, ?)`),
				v.ID, i, x.kind, x.value); err != nil {
				return fmt.Errorf("inventory: store SANs of %s/%s: %w", v.IssuerID, v.Serial, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Certificate returns one certificate with its SANs and DER.
// Errors: ErrNotFound (also for a malformed serial, which cannot exist).
func (s *Store) Certificate(ctx context.Context, issuerID, serial string) (*Certificate, error) {
	norm, err := NormalizeSerial(serial)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate %s/%s", ErrNotFound, issuerID, truncateForError(serial))
	}
	return s.getCert(ctx, s.db, issuerID, norm, "")
}

// lockedCert reads a certificate inside a write transaction, locking its
// row on PostgreSQL so the state check and the update that follows cannot
// interleave with another replica's transition of the same row.
func (s *Store) lockedCert(ctx context.Context, tx *sqlx.Tx, issuerID, serial string) (*Certificate, error) {
	return s.getCert(ctx, tx, issuerID, serial, s.forUpdate)
}

func (s *Store) getCert(ctx context.Context, q sqlx.QueryerContext, issuerID, serial, suffix string) (*Certificate, error) {
	var r certRow
	err := sqlx.GetContext(ctx, q, &r, s.q(`SELECT `+certColumns+` FROM certificates WHERE issuer_id = ? AND serial = ?`+suffix), issuerID, serial)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: certificate %s/%s", ErrNotFound, issuerID, serial)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read certificate %s/%s: %w", issuerID, serial, err)
	}
	certs := []Certificate{r.cert()}
	if err := s.loadSANs(ctx, q, certs); err != nil {
		return nil, err
	}
	return &certs[0], nil
}

// loadSANs fills SANs for certs with one query. SANs are written once, in
// the reserving transaction, so reading them separately is consistent.
func (s *Store) loadSANs(ctx context.Context, q sqlx.QueryerContext, certs []Certificate) error {
	if len(certs) == 0 {
		return nil
	}
	idx := make(map[int64]int, len(certs))
	ids := make([]int64, len(certs))
	for i := range certs {
		idx[certs[i].ID] = i
		ids[i] = certs[i].ID
		certs[i].SANs = []string{}
	}
	query, args, err := sqlx.In(`SELECT cert_id, kind, value FROM certificate_sans WHERE cert_id IN (?) ORDER BY cert_id, pos`, ids)
	if err != nil {
		return fmt.Errorf("inventory: build SAN query: %w", err)
	}
	var rows []struct {
		CertID int64  `db:"cert_id"`
		Kind   string `db:"kind"`
		Value  string `db:"value"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, s.q(query), args...); err != nil {
		return fmt.Errorf("inventory: read SANs: %w", err)
	}
	for _, r := range rows {
		i := idx[r.CertID]
		certs[i].SANs = append(certs[i].SANs, r.Kind+":"+r.Value)
	}
	return nil
}
