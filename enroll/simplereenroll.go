package enroll

import (
	"crypto/x509"
	"net/http"
	"slices"

	"github.com/mica-pki/mica/ca"
)

// simplereenroll answers POST /simplereenroll (RFC 7030 section 4.2.2):
// a device renews with the certificate it holds. That certificate must be
// one MICA issued, currently valid and recorded as issued (not revoked,
// not already superseded), and the CSR must ask for the same subject and
// names. The new certificate names the old one as its predecessor, which
// marks the old one superseded.
func (s *Server) simplereenroll(w http.ResponseWriter, r *http.Request, l *label) {
	const op = "simplereenroll"
	if !s.allow(w, r, op) {
		return
	}
	chain, err := s.clientCert(r)
	if err != nil {
		s.fail(w, r, op, "", err)
		return
	}
	if len(chain) == 0 {
		s.fail(w, r, op, "", ca.Errorf(ca.ErrUnauthorized, "re-enrollment needs the current certificate as TLS client certificate"))
		return
	}
	requester := certRequester(chain[0])
	rec, err := s.verifyMICA(r, chain)
	if err != nil {
		s.fail(w, r, op, requester, err)
		return
	}
	der, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, op, requester, badBody(err))
		return
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		s.fail(w, r, op, requester, ca.Wrap(ca.ErrBadCSR, err, "malformed CSR"))
		return
	}
	if err := s.checkTLSUnique(r, l, der); err != nil {
		s.fail(w, r, op, requester, err)
		return
	}
	if reason := sameNames(chain[0], csr); reason != "" {
		s.fail(w, r, op, requester, ca.Errorf(ca.ErrPolicy, "re-enrollment must keep the certificate's names: %s", reason))
		return
	}
	pred := rec.Serial
	if rec.IssuerID != "" {
		pred = rec.IssuerID + "/" + rec.Serial
	}
	p := &principal{requester: requester}
	issued, err := s.issue(r, l, p, der, pred)
	if err != nil {
		s.fail(w, r, op, requester, err)
		return
	}
	s.sendCert(w, r, issued.Certificate)
}

// sameNames compares the subject and subjectAltNames of a certificate and
// a CSR by meaning: parsed attribute values, not their bytes, so an
// OpenSSL UTF8String CN equals a Go PrintableString CN and the order of
// SANs does not matter. It returns "" when they match, else the reason.
func sameNames(c *x509.Certificate, csr *x509.CertificateRequest) string {
	if c.Subject.String() != csr.Subject.String() {
		return "subject " + csr.Subject.String() + " differs from " + c.Subject.String()
	}
	same := func(a, b []string) bool {
		a, b = slices.Clone(a), slices.Clone(b)
		slices.Sort(a)
		slices.Sort(b)
		return slices.Equal(a, b)
	}
	// The CA copies a DNS-shaped CN into the SANs, so the CN counts as a
	// name on both sides.
	withCN := func(names []string, cn string) []string {
		if cn != "" && !slices.Contains(names, cn) {
			names = append(slices.Clone(names), cn)
		}
		return names
	}
	cn := c.Subject.CommonName
	if !same(withCN(c.DNSNames, cn), withCN(csr.DNSNames, cn)) {
		return "DNS names differ"
	}
	if !same(c.EmailAddresses, csr.EmailAddresses) {
		return "email addresses differ"
	}
	var ci, ri, cu, ru []string
	for _, ip := range c.IPAddresses {
		ci = append(ci, ip.String())
	}
	for _, ip := range csr.IPAddresses {
		ri = append(ri, ip.String())
	}
	for _, u := range c.URIs {
		cu = append(cu, u.String())
	}
	for _, u := range csr.URIs {
		ru = append(ru, u.String())
	}
	if !same(ci, ri) {
		return "IP addresses differ"
	}
	if !same(cu, ru) {
		return "URIs differ"
	}
	return ""
}
