package enroll

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"net/http"

	"github.com/mica-pki/mica/ca"
)

// oidChallengePassword is PKCS#9 challengePassword, which RFC 7030 section
// 3.5 uses to carry the tls-unique value into the CSR.
var oidChallengePassword = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}

// checkTLSUnique enforces RFC 7030 section 3.5 proof of possession on a
// label with tls_unique: the CSR's challengePassword must be the base64 of
// this TLS connection's tls-unique value, which ties the CSR to the
// authenticated session. tls-unique exists only up to TLS 1.2 (RFC 9266),
// so such a label refuses TLS 1.3 connections.
func (s *Server) checkTLSUnique(r *http.Request, l *label, csrDER []byte) error {
	if !l.TLSUnique {
		return nil
	}
	if r.TLS == nil || r.TLS.Version != tls.VersionTLS12 || len(r.TLS.TLSUnique) == 0 {
		return ca.Errorf(ca.ErrPolicy, "EST label %s binds requests to tls-unique, which needs a full TLS 1.2 handshake", l.name)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return ca.Wrap(ca.ErrBadCSR, err, "malformed CSR")
	}
	pw, ok := challengePassword(csr.RawTBSCertificateRequest)
	if !ok || pw != base64.StdEncoding.EncodeToString(r.TLS.TLSUnique) {
		return ca.Errorf(ca.ErrPolicy, "the CSR's challengePassword is not this connection's tls-unique value")
	}
	return nil
}

// challengePassword returns the challengePassword attribute of a
// CertificationRequestInfo. crypto/x509 drops attributes that are not
// extension requests, so they are read here.
func challengePassword(tbs []byte) (string, bool) {
	var info struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Attributes asn1.RawValue `asn1:"optional,tag:0"`
	}
	if _, err := asn1.Unmarshal(tbs, &info); err != nil {
		return "", false
	}
	for rest := info.Attributes.Bytes; len(rest) > 0; {
		var a csrAttribute
		var err error
		if rest, err = asn1.Unmarshal(rest, &a); err != nil {
			return "", false
		}
		if !a.Type.Equal(oidChallengePassword) || len(a.Values) != 1 {
			continue
		}
		var pw string
		if _, err := asn1.Unmarshal(a.Values[0].FullBytes, &pw); err != nil {
			return "", false
		}
		return pw, true
	}
	return "", false
}
