package inventory

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// The transitions after reservation. Each one reads the row under lock
// (lockedCert), checks the state, updates and appends its event in one
// transaction, so a transition and its audit record commit together or
// not at all.

// revocationReasons are the RFC 5280 CRLReason names MICA accepts.
// certificateHold and removeFromCRL are refused: revocation in MICA is
// final, and a hold that can never be released would surprise the
// operator who chose it.
var revocationReasons = map[string]bool{
	"unspecified": true, "keyCompromise": true, "cACompromise": true, "affiliationChanged": true,
	"superseded": true, "cessationOfOperation": true, "privilegeWithdrawn": true, "aACompromise": true,
}

// CompleteCertificate turns a reservation into an issued certificate: it
// stores the signed DER and its fingerprint, moves requested → issued and
// appends ev, in one transaction, so the certificate is durable before the
// caller hands it to anyone. The DER must parse, carry the reserved serial
// and, when the reservation recorded one, the reserved public key;
// not_before/not_after are taken from the DER (it is the truth). An empty
// fingerprint is computed; a given one must match SHA-256(DER).
//
// If the row names a Predecessor that is issued or already superseded, it
// is marked superseded (SupersededBy = this serial) in the same transaction
// and a "cert.supersede" event is appended for it; a predecessor that is
// missing, revoked or never issued is left alone (a renewal must not fail
// after the signature exists).
//
// ev defaults: Action "cert.issue", Object "cert:{issuer}/{serial}".
// Errors: ErrNotFound if no such reservation; ErrConflict if it is not in
// state requested; ErrInvalid if the DER is unusable or does not match.
func (s *Store) CompleteCertificate(ctx context.Context, issuerID, serial string, der []byte, fingerprint string, ev Event) error {
	serial, err := NormalizeSerial(serial)
	if err != nil {
		return err
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: certificate %s/%s: DER does not parse: %v", ErrInvalid, issuerID, serial, err)
	}
	if got := x.SerialNumber.Text(16); got != serial {
		return fmt.Errorf("%w: certificate %s/%s: DER carries serial %s", ErrInvalid, issuerID, serial, got)
	}
	sum := sha256.Sum256(der)
	fp := hex.EncodeToString(sum[:])
	if fingerprint != "" {
		if fingerprint, err = normalizeDigest("fingerprint", fingerprint); err != nil {
			return err
		}
		if fingerprint != fp {
			return fmt.Errorf("%w: certificate %s/%s: fingerprint does not match the DER", ErrInvalid, issuerID, serial)
		}
	}
	pk := sha256.Sum256(x.RawSubjectPublicKeyInfo)
	pubHash := hex.EncodeToString(pk[:])
	object := "cert:" + issuerID + "/" + serial
	defaultEvent(&ev, "cert.issue", object)
	now := normTime(s.now())

	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		cur, err := s.lockedCert(ctx, tx, issuerID, serial)
		if err != nil {
			return err
		}
		if cur.State != StateRequested {
			return fmt.Errorf("%w: certificate %s/%s is %s, not requested", ErrConflict, issuerID, serial, cur.State)
		}
		if cur.PublicKeySHA256 != "" && cur.PublicKeySHA256 != pubHash {
			return fmt.Errorf("%w: certificate %s/%s: DER public key differs from the reserved one", ErrInvalid, issuerID, serial)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE certificates SET state = ?, der = ?, fingerprint_sha256 = ?,
			pubkey_sha256 = ?, not_before = ?, not_after = ?, key_bits = ?, sig_alg = ?, updated_at = ? WHERE id = ?`),
			string(StateIssued), der, fp, pubHash, s.timeArg(x.NotBefore), s.timeArg(x.NotAfter),
			KeyBits(x), x.SignatureAlgorithm.String(), s.timeArg(now), cur.ID); err != nil {
			return fmt.Errorf("inventory: complete certificate %s/%s: %w", issuerID, serial, err)
		}
		if err := s.appendEventTx(ctx, tx, &ev); err != nil {
			return err
		}
		if cur.Predecessor == "" {
			return nil
		}
		predIssuer := cur.PredecessorIssuerID
		if predIssuer == "" {
			predIssuer = issuerID
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE certificates SET state = ?, superseded_by = ?, updated_at = ?
			WHERE issuer_id = ? AND serial = ? AND state IN (?, ?)`),
			string(StateSuperseded), serial, s.timeArg(now), predIssuer, cur.Predecessor, string(StateIssued), string(StateSuperseded))
		if err != nil {
			return fmt.Errorf("inventory: supersede %s/%s: %w", predIssuer, cur.Predecessor, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // nothing to supersede (see doc comment)
		}
		sup := Event{
			Time: ev.Time, Actor: ev.Actor, Action: "cert.supersede", Protocol: ev.Protocol, Source: ev.Source,
			Object: "cert:" + predIssuer + "/" + cur.Predecessor, Outcome: "ok",
		}
		sup.Details, _ = json.Marshal(map[string]string{"superseded_by": object})
		return s.appendEventTx(ctx, tx, &sup)
	})
}

// FailCertificate abandons a reservation (signing failed or was refused):
// requested → failed, with ev appended in the same transaction. The serial
// stays claimed so it is never reused. ev defaults: Action "cert.fail",
// Object "cert:{issuer}/{serial}"; Outcome defaults to "error".
//
// Errors: ErrNotFound; ErrConflict if the certificate is not requested.
func (s *Store) FailCertificate(ctx context.Context, issuerID, serial string, ev Event) error {
	serial, err := NormalizeSerial(serial)
	if err != nil {
		return err
	}
	defaultEvent(&ev, "cert.fail", "cert:"+issuerID+"/"+serial)
	if ev.Outcome == "" {
		ev.Outcome = "error"
	}
	now := normTime(s.now())
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		cur, err := s.lockedCert(ctx, tx, issuerID, serial)
		if err != nil {
			return err
		}
		if cur.State != StateRequested {
			return fmt.Errorf("%w: certificate %s/%s is %s, not requested", ErrConflict, issuerID, serial, cur.State)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE certificates SET state = ?, updated_at = ? WHERE id = ?`),
			string(StateFailed), s.timeArg(now), cur.ID); err != nil {
			return fmt.Errorf("inventory: fail certificate %s/%s: %w", issuerID, serial, err)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// RevokeCertificate revokes an issued or superseded certificate (expired
// ones included: revocation stays visible in OCSP) and appends ev in the
// same transaction, returning the updated certificate. reason is an RFC
// 5280 CRLReason name ("" means "unspecified"; certificateHold and
// removeFromCRL are refused); a zero at means now. ev defaults: Action
// "cert.revoke", Object "cert:{issuer}/{serial}", Details {"reason": …}.
//
// Errors: ErrNotFound; ErrConflict if already revoked (the message says
// so) or never issued (requested, failed); ErrInvalid for a bad reason.
func (s *Store) RevokeCertificate(ctx context.Context, issuerID, serial, reason string, at time.Time, ev Event) (*Certificate, error) {
	serial, err := NormalizeSerial(serial)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "unspecified"
	}
	if !revocationReasons[reason] {
		return nil, fmt.Errorf("%w: revocation reason %q (want an RFC 5280 name such as keyCompromise, superseded, cessationOfOperation)", ErrInvalid, truncateForError(reason))
	}
	if at.IsZero() {
		at = s.now()
	}
	at = normTime(at)
	defaultEvent(&ev, "cert.revoke", "cert:"+issuerID+"/"+serial)
	if len(ev.Details) == 0 {
		ev.Details, _ = json.Marshal(map[string]string{"reason": reason})
	}
	now := normTime(s.now())
	var out *Certificate
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		cur, err := s.lockedCert(ctx, tx, issuerID, serial)
		if err != nil {
			return err
		}
		switch cur.State {
		case StateIssued, StateSuperseded:
		case StateRevoked:
			return fmt.Errorf("%w: certificate %s/%s already revoked", ErrConflict, issuerID, serial)
		default:
			return fmt.Errorf("%w: certificate %s/%s is %s and was never issued", ErrConflict, issuerID, serial, cur.State)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE certificates SET state = ?, revocation_reason = ?, revoked_at = ?,
			updated_at = ? WHERE id = ?`), string(StateRevoked), reason, s.timeArg(at), s.timeArg(now), cur.ID); err != nil {
			return fmt.Errorf("inventory: revoke certificate %s/%s: %w", issuerID, serial, err)
		}
		// The CRL intent commits with the revocation: a process killed
		// before it signs the CRL leaves the mark for any replica.
		if err := s.markCRLDirtyTx(ctx, tx, issuerID, now); err != nil {
			return err
		}
		if err := s.appendEventTx(ctx, tx, &ev); err != nil {
			return err
		}
		cur.State, cur.RevocationReason, cur.RevokedAt, cur.UpdatedAt = StateRevoked, reason, &at, now
		out = cur
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
