package inventory

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// OCSPResponse is a pre-signed OCSP response (no nonce) for one
// certificate. Stored in the database rather than in each replica's memory
// so a response signed by one replica is served by all of them, and a
// restart costs no signatures.
type OCSPResponse struct {
	IssuerID   string
	Serial     string
	Status     string // good, revoked
	ThisUpdate time.Time
	NextUpdate time.Time
	DER        []byte
}

// PutOCSPResponse stores r, replacing any older response for the same
// certificate. An older response (earlier ThisUpdate) never replaces a newer
// one, and a "good" one never replaces "revoked": two replicas racing
// (one refreshing, one revoking) must end with the revocation visible.
func (s *Store) PutOCSPResponse(ctx context.Context, r *OCSPResponse) error {
	serial, err := NormalizeSerial(r.Serial)
	if err != nil {
		return err
	}
	if len(r.DER) == 0 || (r.Status != "good" && r.Status != "revoked") {
		return fmt.Errorf("%w: OCSP response needs DER and status good or revoked", ErrInvalid)
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO ocsp_responses (issuer_id, serial, status, this_update, next_update, der)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (issuer_id, serial) DO UPDATE SET status = excluded.status, this_update = excluded.this_update,
			next_update = excluded.next_update, der = excluded.der
		WHERE ocsp_responses.this_update <= excluded.this_update
			AND NOT (ocsp_responses.status = 'revoked' AND excluded.status <> 'revoked')`),
		r.IssuerID, serial, r.Status, s.timeArg(r.ThisUpdate), s.timeArg(r.NextUpdate), r.DER)
	if isForeignKeyViolation(err) {
		return fmt.Errorf("%w: issuer %s", ErrNotFound, r.IssuerID)
	}
	if err != nil {
		return fmt.Errorf("inventory: store OCSP response %s/%s: %w", r.IssuerID, serial, err)
	}
	return nil
}

// GetOCSPResponse returns the stored response for a certificate. This is
// the OCSP hot path: one primary-key lookup.
// Errors: ErrNotFound when none is stored.
func (s *Store) GetOCSPResponse(ctx context.Context, issuerID, serial string) (*OCSPResponse, error) {
	var r struct {
		Status     string `db:"status"`
		ThisUpdate dbTime `db:"this_update"`
		NextUpdate dbTime `db:"next_update"`
		DER        []byte `db:"der"`
	}
	err := s.db.GetContext(ctx, &r, s.q(`SELECT status, this_update, next_update, der FROM ocsp_responses
		WHERE issuer_id = ? AND serial = ?`), issuerID, serial)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: no OCSP response for %s/%s", ErrNotFound, issuerID, serial)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read OCSP response %s/%s: %w", issuerID, serial, err)
	}
	return &OCSPResponse{IssuerID: issuerID, Serial: serial, Status: r.Status, ThisUpdate: r.ThisUpdate.Time,
		NextUpdate: r.NextUpdate.Time, DER: r.DER}, nil
}

// OCSPDue lists up to limit unexpired certificates of issuerID whose
// pre-signed response is missing, expires before refreshBefore, or still
// says good although the certificate is revoked (a revocation whose
// pre-signing failed). The refresh sweep signs these; an empty result
// means every response is fresh. The returned certificates carry the
// fields a response needs, not SANs or DER.
func (s *Store) OCSPDue(ctx context.Context, issuerID string, refreshBefore, now time.Time, limit int) ([]Certificate, error) {
	var rows []struct {
		Serial    string `db:"serial"`
		State     string `db:"state"`
		Reason    string `db:"revocation_reason"`
		RevokedAt dbTime `db:"revoked_at"`
		NotAfter  dbTime `db:"not_after"`
	}
	err := s.db.SelectContext(ctx, &rows, s.q(fmt.Sprintf(`SELECT c.serial, c.state, c.revocation_reason, c.revoked_at, c.not_after
		FROM certificates c LEFT JOIN ocsp_responses r ON r.issuer_id = c.issuer_id AND r.serial = c.serial
		WHERE c.issuer_id = ? AND c.state IN (?, ?, ?) AND c.not_after > ?
			AND (r.serial IS NULL OR r.next_update < ? OR (c.state = ? AND r.status <> 'revoked'))
		ORDER BY c.id LIMIT %d`, clampLimit(limit))),
		issuerID, string(StateIssued), string(StateSuperseded), string(StateRevoked), s.timeArg(now),
		s.timeArg(refreshBefore), string(StateRevoked))
	if err != nil {
		return nil, fmt.Errorf("inventory: OCSP responses due for %s: %w", issuerID, err)
	}
	out := make([]Certificate, len(rows))
	for i, r := range rows {
		out[i] = Certificate{IssuerID: issuerID, Serial: r.Serial, State: State(r.State), RevocationReason: r.Reason,
			RevokedAt: r.RevokedAt.ptr(), NotAfter: r.NotAfter.Time}
	}
	return out, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
