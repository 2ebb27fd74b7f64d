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
	"strings"

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

// park holds an admitted enrollment for approval and answers 202. The
// token that authenticated it stays spent: the held row carries its
// authorisation (requester and bound names) forward. A held re-enrollment
// is marked with renewPrefix so that only the certificate it renews picks
// it up, at simplereenroll.
func (s *Server) park(w http.ResponseWriter, r *http.Request, l *label, op string, a *admitted) {
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	requester := a.p.requester
	if a.pred != "" {
		requester = renewPrefix + requester
	}
	pend := &inventory.ESTPending{ID: hex.EncodeToString(id), Label: l.name, CSRSHA256: csrDigest(a.der), CSR: a.der,
		Requester: requester, Identifiers: a.p.identifiers, Source: s.sourceAddr(r)}
	err := s.store.PutESTPending(r.Context(), pend, inventory.Event{Time: s.now(), Actor: a.p.requester, Protocol: "est", Source: s.sourceAddr(r), Outcome: "ok"})
	if err != nil && !errors.Is(err, inventory.ErrDuplicate) {
		s.release(r, a.p)
		s.fail(w, r, op, a.p.requester, ca.Wrap(ca.ErrUnavailable, err, "cannot hold request"))
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

// pickUp answers a retry of a held request and reports whether it did.
// A held enrollment needs no fresh credential: its authorisation was
// checked when it was held, and what comes back is a certificate, which is
// public. A held re-enrollment (renewal non-nil) is picked up only by the
// certificate it renews, presented again, so the renewal supersedes it.
func (s *Server) pickUp(w http.ResponseWriter, r *http.Request, l *label, op string, csr []byte, renewal *admitted) bool {
	pend, err := s.store.ESTPendingByCSR(r.Context(), l.name, csrDigest(csr))
	if errors.Is(err, inventory.ErrNotFound) {
		return false
	}
	if err != nil {
		s.fail(w, r, op, "", ca.Wrap(ca.ErrUnavailable, err, "cannot read held requests"))
		return true
	}
	requester, pred := pend.Requester, ""
	heldRenewal := strings.HasPrefix(pend.Requester, renewPrefix)
	switch {
	case heldRenewal && renewal == nil:
		s.fail(w, r, op, "", ca.Errorf(ca.ErrPolicy, "request %s is a held re-enrollment: retry it at simplereenroll", pend.ID))
		return true
	case !heldRenewal && renewal != nil:
		s.fail(w, r, op, renewal.p.requester, ca.Errorf(ca.ErrPolicy, "request %s is a held enrollment: retry it at simpleenroll", pend.ID))
		return true
	case renewal != nil && pend.Requester != renewPrefix+renewal.p.requester:
		s.fail(w, r, op, renewal.p.requester, ca.Errorf(ca.ErrPolicy, "request %s renews another certificate", pend.ID))
		return true
	case renewal != nil:
		requester, pred = renewal.p.requester, renewal.pred
	}
	switch pend.Status {
	case "pending":
		s.accepted(w, "still held for approval as "+pend.ID)
	case "rejected":
		s.fail(w, r, op, requester, ca.Errorf(ca.ErrPolicy, "enrollment %s was rejected by an operator", pend.ID))
	case "issued":
		rec, err := s.store.Certificate(r.Context(), pend.CertIssuerID, pend.CertSerial)
		if err != nil {
			s.fail(w, r, op, requester, ca.Wrap(ca.ErrUnavailable, err, "cannot read issued certificate"))
			return true
		}
		c, err := x509.ParseCertificate(rec.DER)
		if err != nil {
			s.fail(w, r, op, requester, ca.Wrap(ca.ErrInternal, err, "stored certificate does not parse"))
			return true
		}
		s.sendCert(w, r, c)
	case "approved":
		issued, err := s.issueCtx(r.Context(), l, requester, pend.Identifiers, s.sourceAddr(r), pend.CSR, pred)
		if err != nil {
			s.fail(w, r, op, requester, err)
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
