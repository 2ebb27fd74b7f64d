package enroll

import "net/http"

// simplereenroll answers POST /simplereenroll (RFC 7030 section 4.2.2):
// a device renews with the certificate it holds. The label's rules
// (rules.go) apply as to every operation: the label must accept client
// certificates; the certificate must be one MICA issued under the label's
// profile (or its renew_profiles), currently valid and recorded as issued
// (not revoked, not already superseded); the CSR must ask for exactly the
// certificate's identity; tls-unique and approval hold as for
// simpleenroll. The new certificate names the old one as its predecessor,
// which marks the old one superseded.
func (s *Server) simplereenroll(w http.ResponseWriter, r *http.Request, l *label) {
	a := s.admit(w, r, l, "simplereenroll")
	if a == nil {
		return
	}
	issued, err := s.issue(r, l, a.p, a.der, a.pred)
	if err != nil {
		s.fail(w, r, "simplereenroll", a.p.requester, err)
		return
	}
	s.sendCert(w, r, issued.Certificate)
}
