package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"net/url"
	"testing"
	"time"
)

// FuzzCheckCSR feeds network bytes to what parses and checks a CSR from a
// client: parseCSR, verifyCSRSignature, and checkNames under a profile that
// allows every name type, with and without authorised identifiers. None
// may panic; every refusal must be a typed error from the vocabulary (so
// front ends answer 400/403, never 500); and what is accepted must be
// bounded as check promises (at most maxNames SANs, a CN within
// ub-common-name unless the name is also a SAN). The committed corpus is
// in testdata/fuzz/FuzzCheckCSR.
func FuzzCheckCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse("spiffe://example.test/ns/a")
	for _, tmpl := range []*x509.CertificateRequest{
		{Subject: pkix.Name{CommonName: "a.test"}},
		{Subject: pkix.Name{CommonName: "Device 17"}},
		{Subject: pkix.Name{CommonName: "192.0.2.1"}, DNSNames: []string{"A.Test", "*.b.test"}, IPAddresses: []net.IP{net.ParseIP("2001:db8::1")},
			URIs: []*url.URL{u}, EmailAddresses: []string{"x@Example.Test"}},
	} {
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
		f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
		f.Add(der[:len(der)/2])
	}
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n!!\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{0x30, 0x80})
	pols, err := compileProfiles(map[string]Profile{"all": {Name: "all", DNS: []string{"*"}, IPRanges: []string{"*"}, URIs: []string{"*"},
		Emails: []string{"*"}, CommonNames: []string{"*"}, ExtKeyUsage: []string{"clientAuth"}, DefaultLifetime: 24 * time.Hour, MaxLifetime: 48 * time.Hour}})
	if err != nil {
		f.Fatal(err)
	}
	pol := pols["all"]
	f.Fuzz(func(t *testing.T, in []byte) {
		csr, err := parseCSR(in)
		if err != nil {
			typed(t, "parseCSR", err)
			return
		}
		if err := verifyCSRSignature(csr); err != nil {
			typed(t, "verifyCSRSignature", err)
		}
		for _, authorised := range [][]string{nil, {"dns:a.test", "cn:Device 17"}} {
			cn, sans, err := checkNames(csr, pol, authorised)
			if err != nil {
				typed(t, "checkNames", err)
				continue
			}
			if len(sans) > maxNames {
				t.Fatalf("checkNames accepted %d SANs, more than %d", len(sans), maxNames)
			}
			if cn == "" && len(sans) == 0 {
				t.Fatal("checkNames accepted a request that names nothing")
			}
			if len(cn) > maxCNLength {
				t.Fatalf("checkNames kept a %d-character CN", len(cn))
			}
		}
	})
}

// typed fails unless err carries a kind front ends map to a client error.
func typed(t *testing.T, what string, err error) {
	t.Helper()
	switch KindOf(err) {
	case ErrBadCSR, ErrWeakKey, ErrPolicy:
	default:
		t.Fatalf("%s: error %v is of kind %v, want a client error (bad CSR, weak key, policy)", what, err, KindOf(err))
	}
	if UserMessage(err) == "" || UserMessage(err) == "internal error" {
		t.Fatalf("%s: error %v has no user message", what, err)
	}
}
