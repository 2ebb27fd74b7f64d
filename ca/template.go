package ca

import (
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"

	"go.step.sm/crypto/x509util"
)

// leafTemplate takes the subject and SANs from the template data only, which
// holds the names step 1 checked, never the CSR's own subject or extensions.
// Everything else is set in Go after GetCertificate, where the types keep
// us honest.
const leafTemplate = `{
	"subject": {{ toJson .Subject }},
	"sans": {{ toJson .SANs }}
}`

// serialLen is the serial number length in octets: a fixed 0x01 prefix and
// 128 bits from crypto/rand. The prefix keeps the INTEGER positive and its
// DER length the same (17 octets) whatever the random bits are, well inside
// RFC 5280's 20-octet limit and over the CA/B Forum's 64-bit minimum.
const serialLen = 17

// newSerial draws a serial number.
func newSerial() (*big.Int, error) {
	var b [serialLen]byte
	b[0] = 0x01
	if _, err := rand.Read(b[1:]); err != nil {
		return nil, fmt.Errorf("reading random serial: %w", err)
	}
	return new(big.Int).SetBytes(b[:]), nil
}

// serialHex is the inventory's form of a serial: lower-case hex, no colons,
// no leading zeros.
func serialHex(n *big.Int) string { return n.Text(16) }

// certURLs are the relying-party URLs for certificates an issuer signs.
type certURLs struct {
	crl       []string
	ocsp      []string
	caIssuers []string
}

// urlsFor fills URLs for certificates signed by issuer id. Any URL that is
// empty in the configuration is left out rather than written empty.
func urlsFor(u URLs, issuerID string, withOCSP bool) certURLs {
	var out certURLs
	if u.CRLBase != "" {
		out.crl = []string{u.CRLBase + issuerID + ".crl"}
	}
	if withOCSP && u.OCSP != "" {
		out.ocsp = []string{u.OCSP}
	}
	if u.CAIssuersBase != "" {
		out.caIssuers = []string{u.CAIssuersBase + issuerID + ".crt"}
	}
	return out
}

// leafParams is what step 2 needs besides the checked request.
type leafParams struct {
	serial  *big.Int
	issuer  *x509.Certificate
	sigAlg  x509.SignatureAlgorithm
	urls    certURLs
	profile *policy
}

// buildLeaf is the template half of step 2: an unsigned certificate made
// from the checked request through x509util, then given MICA's fields.
func buildLeaf(c *checked, p leafParams) (*x509.Certificate, error) {
	data := x509util.NewTemplateData()
	data.SetCommonName(c.cn)
	sans := make([]x509util.SubjectAlternativeName, len(c.sans))
	for i, id := range c.sans {
		sans[i] = x509util.SubjectAlternativeName{Type: id.kind, Value: id.value}
	}
	data.SetSubjectAlternativeNames(sans...)
	crt, err := x509util.NewCertificate(c.csr, x509util.WithTemplate(leafTemplate, data))
	if err != nil {
		return nil, Wrap(ErrInternal, err, "building the certificate template failed")
	}
	tmpl := crt.GetCertificate()

	ski, err := subjectKeyID(c.csr.PublicKey)
	if err != nil {
		return nil, Wrap(ErrInternal, err, "computing the subject key identifier failed")
	}
	tmpl.SerialNumber = p.serial
	tmpl.NotBefore = c.notBefore
	tmpl.NotAfter = c.notAfter
	tmpl.SignatureAlgorithm = p.sigAlg
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	tmpl.KeyUsage = p.profile.keyUsageFor(c.keyType)
	tmpl.ExtKeyUsage = append([]x509.ExtKeyUsage(nil), p.profile.eku...)
	tmpl.SubjectKeyId = ski
	tmpl.AuthorityKeyId = p.issuer.SubjectKeyId
	tmpl.CRLDistributionPoints = p.urls.crl
	tmpl.OCSPServer = p.urls.ocsp
	tmpl.IssuingCertificateURL = p.urls.caIssuers
	tmpl.PublicKey = c.csr.PublicKey
	return tmpl, nil
}
