package enroll

import (
	"context"
	"crypto/x509"
	"net/http"

	"github.com/mica-pki/mica/ca"
)

// simpleenroll answers POST /simpleenroll (RFC 7030 section 4.2.1): the
// device sends a PKCS#10 request and gets its certificate back, after
// authenticating with a client certificate or a one-time token (the
// label's rules, rules.go). On a label with approval the first request is
// parked and answered 202; retries with the same CSR pick the certificate
// up once an operator approves.
func (s *Server) simpleenroll(w http.ResponseWriter, r *http.Request, l *label) {
	a := s.admit(w, r, l, "simpleenroll")
	if a == nil {
		return
	}
	issued, err := s.issue(r, l, a.p, a.der, "")
	if err != nil {
		s.release(r, a.p)
		s.fail(w, r, "simpleenroll", a.p.requester, err)
		return
	}
	s.sendCert(w, r, issued.Certificate)
}

// badBody turns a body decoding error into a 400 (413 stays a 400 too:
// RFC 7030 clients treat any 4xx alike, and the reason is in the text).
func badBody(err error) error {
	if err == errTooLarge {
		return ca.Errorf(ca.ErrBadCSR, "request body larger than %d bytes", maxBody)
	}
	return ca.Wrap(ca.ErrBadCSR, err, "malformed request body: "+err.Error())
}

// issue asks the CA for a certificate. Refusals from ca.Issue are already
// audited there, so the returned error is marked as such.
func (s *Server) issue(r *http.Request, l *label, p *principal, csr []byte, predecessor string) (*ca.Issued, error) {
	if err := s.allowCredential(r.Context(), l, p.requester); err != nil {
		return nil, err
	}
	return s.issueCtx(r.Context(), l, p.requester, p.identifiers, s.sourceAddr(r), csr, predecessor)
}

func (s *Server) issueCtx(ctx context.Context, l *label, requester string, ids []string, source string, csr []byte, predecessor string) (*ca.Issued, error) {
	issued, err := s.ca.Issue(ctx, ca.Request{
		CSR:         csr,
		Profile:     l.Profile,
		Identifiers: ids,
		Requester:   requester,
		Protocol:    "est",
		Source:      source,
		Predecessor: predecessor,
	})
	if err != nil {
		return nil, auditedError{err}
	}
	return issued, nil
}

// sendCert answers with the issued certificate alone, as RFC 7030 section
// 4.2.3 asks (the chain comes from /cacerts).
func (s *Server) sendCert(w http.ResponseWriter, r *http.Request, c *x509.Certificate) {
	der, err := certsOnly([]*x509.Certificate{c})
	if err != nil {
		s.fail(w, r, "enroll", "", err)
		return
	}
	writeBase64(w, http.StatusOK, mediaPKCS7, der)
}
