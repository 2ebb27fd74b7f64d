package enroll

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// retryAfterPending is what a device is told to wait between polls.
const retryAfterPending = 60

// pendingStore is the part of the store the approval flow needs.
type pendingStore interface {
	PutESTPending(ctx context.Context, p *inventory.ESTPending, ev inventory.Event) error
	ESTPendingByCSR(ctx context.Context, label, csrSHA256 string) (*inventory.ESTPending, error)
	FinishESTPending(ctx context.Context, id, issuerID, serial string) error
}

func csrDigest(csr []byte) string {
	sum := sha256.Sum256(csr)
	return hex.EncodeToString(sum[:])
}

// park holds an authenticated enrollment for approval and answers 202.
// The token that authenticated it stays spent: the held row carries its
// authorisation (requester and bound names) forward.
func (s *Server) park(w http.ResponseWriter, r *http.Request, l *label, p *principal, csr []byte) {
	if _, err := x509.ParseCertificateRequest(csr); err != nil {
		s.release(r, p)
		s.fail(w, r, "simpleenroll", p.requester, ca.Wrap(ca.ErrBadCSR, err, "malformed CSR"))
		return
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	pend := &inventory.ESTPending{ID: hex.EncodeToString(id), Label: l.name, CSRSHA256: csrDigest(csr), CSR: csr,
		Requester: p.requester, Identifiers: p.identifiers, Source: s.sourceAddr(r)}
	err := s.store.PutESTPending(r.Context(), pend, inventory.Event{Time: s.now(), Actor: p.requester, Protocol: "est", Source: s.sourceAddr(r), Outcome: "ok"})
	if err != nil && !errors.Is(err, inventory.ErrDuplicate) {
		s.release(r, p)
		s.fail(w, r, "simpleenroll", p.requester, ca.Wrap(ca.ErrUnavailable, err, "cannot hold request"))
		return
	}
	s.accepted(w, fmt.Sprintf("held for approval as %s (mica est approve %s)", pend.ID, pend.ID))
}

func (s *Server) accepted(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", fmt.Sprint(retryAfterPending))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusAccepted)
	_, _ = fmt.Fprintln(w, msg)
}

// pickUp answers a retry of a held enrollment and reports whether it did.
// A held CSR needs no fresh credential: its authorisation was checked when
// it was held, and what comes back is a certificate, which is public.
func (s *Server) pickUp(w http.ResponseWriter, r *http.Request, l *label, csr []byte) bool {
	pend, err := s.store.ESTPendingByCSR(r.Context(), l.name, csrDigest(csr))
	if errors.Is(err, inventory.ErrNotFound) {
		return false
	}
	const op = "simpleenroll"
	if err != nil {
		s.fail(w, r, op, "", ca.Wrap(ca.ErrUnavailable, err, "cannot read held requests"))
		return true
	}
	switch pend.Status {
	case "pending":
		s.accepted(w, "still held for approval as "+pend.ID)
	case "rejected":
		s.fail(w, r, op, pend.Requester, ca.Errorf(ca.ErrPolicy, "enrollment %s was rejected by an operator", pend.ID))
	case "issued":
		rec, err := s.store.Certificate(r.Context(), pend.CertIssuerID, pend.CertSerial)
		if err != nil {
			s.fail(w, r, op, pend.Requester, ca.Wrap(ca.ErrUnavailable, err, "cannot read issued certificate"))
			return true
		}
		c, err := x509.ParseCertificate(rec.DER)
		if err != nil {
			s.fail(w, r, op, pend.Requester, ca.Wrap(ca.ErrInternal, err, "stored certificate does not parse"))
			return true
		}
		s.sendCert(w, r, c)
	case "approved":
		issued, err := s.issueCtx(r.Context(), l, pend.Requester, pend.Identifiers, s.sourceAddr(r), pend.CSR, "")
		if err != nil {
			s.fail(w, r, op, pend.Requester, err)
			return true
		}
		if err := s.store.FinishESTPending(r.Context(), pend.ID, issued.Record.IssuerID, issued.Record.Serial); err != nil {
			// Another replica issued for the same approval first; ours is
			// committed too and just as valid, so hand it out.
			s.log.Warn("finishing held EST enrollment", "id", pend.ID, "err", err)
		}
		s.sendCert(w, r, issued.Certificate)
	}
	return true
}
