package inventory

import (
	"context"
	"fmt"
	"strings"
)

// certWhere turns a CertFilter into one WHERE clause. It is the only
// place filters are interpreted, so FindCertificates and Count always
// agree. withCursor adds the keyset condition (Count ignores paging).
func (s *Store) certWhere(f CertFilter, withCursor bool) (*where, error) {
	var w where
	if f.IssuerID != "" {
		w.add(`issuer_id = ?`, f.IssuerID)
	}
	if f.Serial != "" {
		serial, err := NormalizeSerial(f.Serial)
		if err != nil {
			return nil, err
		}
		w.add(`serial = ?`, serial)
	}
	if len(f.Serials) > 0 {
		if len(f.Serials) > 1000 {
			return nil, fmt.Errorf("%w: at most 1000 serials per query, got %d", ErrInvalid, len(f.Serials))
		}
		args := make([]any, len(f.Serials))
		for i, sr := range f.Serials {
			n, err := NormalizeSerial(sr)
			if err != nil {
				return nil, err
			}
			args[i] = n
		}
		w.add(`serial IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")+`)`, args...)
	}
	if f.Profile != "" {
		w.add(`profile = ?`, f.Profile)
	}
	if f.Protocol != "" {
		w.add(`protocol = ?`, f.Protocol)
	}
	if f.Requester != "" {
		w.add(`requester = ?`, f.Requester)
	}
	if f.PublicKeySHA256 != "" {
		h, err := normalizeDigest("public key SHA-256", f.PublicKeySHA256)
		if err != nil {
			return nil, err
		}
		w.add(`pubkey_sha256 = ?`, h)
	}
	if !f.ExpiresAfter.IsZero() {
		w.add(`not_after >= ?`, s.timeArg(f.ExpiresAfter))
	}
	if !f.ExpiresBefore.IsZero() {
		w.add(`not_after < ?`, s.timeArg(f.ExpiresBefore))
	}
	if len(f.States) > 0 {
		now := f.Now
		if now.IsZero() {
			now = s.now()
		}
		var ors []string
		var args []any
		var plain []any // stored states needing no expiry split
		for _, st := range f.States {
			switch st {
			case StateIssued:
				// "issued" in a filter means what a user means: still valid.
				ors = append(ors, `(state = ? AND not_after > ?)`)
				args = append(args, string(StateIssued), s.timeArg(now))
			case StateExpired:
				ors = append(ors, `(state = ? AND not_after <= ?)`)
				args = append(args, string(StateIssued), s.timeArg(now))
			case StateRequested, StateRevoked, StateSuperseded, StateFailed:
				plain = append(plain, string(st))
			default:
				return nil, fmt.Errorf("%w: unknown certificate state %q", ErrInvalid, truncateForError(string(st)))
			}
		}
		if len(plain) > 0 {
			ors = append(ors, `state IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(plain)), ", ")+`)`)
			args = append(args, plain...)
		}
		w.add(`(`+strings.Join(ors, ` OR `)+`)`, args...)
	}
	if t := strings.TrimSpace(f.Text); t != "" {
		cond, args := s.textCondition(t)
		w.add(cond, args...)
	}
	if withCursor && f.Before > 0 {
		w.add(`id < ?`, f.Before)
	}
	return &w, nil
}

// textCondition matches t case-insensitively as a substring of the common
// name, subject or any SAN value (all in search_text), and — when t looks
// like hex, possibly with colons or spaces as tools print it — of the
// serial or fingerprint in their canonical spelling.
func (s *Store) textCondition(t string) (string, []any) {
	// search_text is stored lower-cased by Go, and the pattern is
	// lower-cased the same way, so LIKE needs no case folding of its own
	// (PostgreSQL's LIKE is case-sensitive, SQLite's folds ASCII only).
	conds := []string{`search_text LIKE ? ESCAPE '\'`}
	args := []any{"%" + escapeLike(strings.ToLower(t)) + "%"}
	if h, ok := stripHex(t); ok {
		// Serials are stored without leading zeros ("00:ab" is "ab");
		// fingerprints keep every digit. Both are lower-case hex.
		serial := strings.TrimLeft(h, "0")
		if serial == "" {
			serial = "0"
		}
		conds = append(conds, `serial LIKE ?`, `fingerprint_sha256 LIKE ?`)
		args = append(args, "%"+serial+"%", "%"+h+"%")
	}
	return `(` + strings.Join(conds, ` OR `) + `)`, args
}

// FindCertificates returns certificates matching f, newest (highest ID)
// first, with SANs and DER loaded. Page by passing the last ID returned as
// f.Before; pages never overlap or skip rows, even while rows are added.
// f.Limit 0 means 100 and is capped at 1000. States may include
// StateExpired; StateIssued then means issued and not yet expired at
// f.Now (default: now). The returned State is the stored one: use
// Certificate.EffectiveState to show "expired".
//
// Errors: ErrInvalid for an unknown state or malformed serial/digest.
func (s *Store) FindCertificates(ctx context.Context, f CertFilter) ([]Certificate, error) {
	w, err := s.certWhere(f, true)
	if err != nil {
		return nil, err
	}
	query := `SELECT ` + certColumns + ` FROM certificates` + w.sql() +
		fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, clampLimit(f.Limit))
	var rows []certRow
	if err := s.db.SelectContext(ctx, &rows, s.q(query), w.args...); err != nil {
		return nil, fmt.Errorf("inventory: find certificates: %w", err)
	}
	out := make([]Certificate, len(rows))
	for i := range rows {
		out[i] = rows[i].cert()
	}
	if err := s.loadSANs(ctx, s.db, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Count returns how many certificates match f, ignoring f.Before and
// f.Limit (it counts the whole result, not a page).
// Errors: as FindCertificates.
func (s *Store) Count(ctx context.Context, f CertFilter) (int, error) {
	w, err := s.certWhere(f, false)
	if err != nil {
		return 0, err
	}
	var n int
	if err := s.db.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM certificates`+w.sql()), w.args...); err != nil {
		return 0, fmt.Errorf("inventory: count certificates: %w", err)
	}
	return n, nil
}
