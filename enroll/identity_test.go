package enroll_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/mica-pki/mica/enroll"
)

// enrollAs enrolls the CSR template with a fresh token on the default
// label and returns the TLS credential.
func (e *testEnv) enrollAs(t *testing.T, tmpl *x509.CertificateRequest) (*tls.Certificate, *x509.Certificate) {
	t.Helper()
	k, der := keyAndCSR(t, tmpl)
	u, p := e.token("default")
	res := post(t, e.client(nil), e.url("/simpleenroll"), u, p, b64(der), nil)
	if res.code != 200 {
		t.Fatalf("enroll %v = %d %s", tmpl.Subject, res.code, res.body)
	}
	c := parseEnrolled(t, res.body)
	return &tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}, c
}

func keyAndCSR(t testing.TB, tmpl *x509.CertificateRequest) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	_, k := csr(t, "unused")
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, k)
	if err != nil {
		t.Fatal(err)
	}
	return k, der
}

func parseEnrolled(t testing.TB, body string) *x509.Certificate {
	t.Helper()
	certs, err := enroll.ParseCertsOnly(mustB64(t, body))
	if err != nil || len(certs) != 1 {
		t.Fatalf("parse enroll response: %v", err)
	}
	return certs[0]
}

func spiffe(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// testIdentityBinding: a MICA client certificate authenticates only for
// its own identity, subject and SANs compared by meaning. The attack it
// pins: CN=Device 17 (no SANs) enrolled, re-enrolled or had a key
// generated for DNS:payments.example.com and a SPIFFE URI, because an
// empty SAN list meant "no restriction".
func testIdentityBinding(t *testing.T, b *base) {
	e := newEnv(t, b, nil)
	cnOnlyCred, cnOnly := e.enrollAs(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "Device 17"}})
	if len(cnOnly.DNSNames)+len(cnOnly.URIs)+len(cnOnly.IPAddresses) != 0 {
		t.Fatalf("Device 17 got SANs %v %v", cnOnly.DNSNames, cnOnly.URIs)
	}
	sanCred, _ := e.enrollAs(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-42.example.test"},
		DNSNames: []string{"dev-42.example.test", "alt-42.example.test"}})
	dev17 := pkix.Name{CommonName: "Device 17"}
	payments := []string{"payments.example.com"}
	spiffeURI := []*url.URL{spiffe(t, "spiffe://example.com/payments")}
	tests := []struct {
		name string
		cred *tls.Certificate
		path string
		tmpl *x509.CertificateRequest
		want int
	}{
		{"CN-only cert enrolls for a DNS name", cnOnlyCred, "/simpleenroll", &x509.CertificateRequest{Subject: dev17, DNSNames: payments}, 403},
		{"CN-only cert enrolls for a SPIFFE URI", cnOnlyCred, "/simpleenroll", &x509.CertificateRequest{Subject: dev17, URIs: spiffeURI}, 403},
		{"CN-only cert enrolls for another subject", cnOnlyCred, "/simpleenroll", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "payments.example.com"}}, 403},
		{"CN-only cert enrolls with an extra subject attribute", cnOnlyCred, "/simpleenroll", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "Device 17", Organization: []string{"Payments"}}}, 403},
		{"CN-only cert gets a server key for a DNS name", cnOnlyCred, "/serverkeygen", &x509.CertificateRequest{Subject: dev17, DNSNames: payments}, 403},
		{"CN-only cert re-enrolls for a SPIFFE URI", cnOnlyCred, "/simplereenroll", &x509.CertificateRequest{Subject: dev17, URIs: spiffeURI}, 403},
		{"CN-only cert enrolls for exactly its subject", cnOnlyCred, "/simpleenroll", &x509.CertificateRequest{Subject: dev17}, 200},
		{"SAN cert drops a name", sanCred, "/simpleenroll", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-42.example.test"}, DNSNames: []string{"dev-42.example.test"}}, 403},
		{"SAN cert adds a URI", sanCred, "/simpleenroll", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-42.example.test"},
			DNSNames: []string{"dev-42.example.test", "alt-42.example.test"}, URIs: spiffeURI}, 403},
		// By meaning: DNS names are case-insensitive and unordered.
		{"SAN cert re-enrolls with names in another case and order", sanCred, "/simplereenroll", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-42.example.test"},
			DNSNames: []string{"ALT-42.Example.Test", "Dev-42.EXAMPLE.test"}}, 200},
	}
	for _, tc := range tests {
		_, der := keyAndCSR(t, tc.tmpl)
		r := post(t, e.client(tc.cred), e.url(tc.path), "", "", b64(der), nil)
		if r.code != tc.want {
			t.Errorf("%s: %s = %d %q, want %d", tc.name, tc.path, r.code, short(r.body), tc.want)
		}
		if tc.want == 403 && !strings.Contains(r.body, "authorises only its own identity") {
			t.Errorf("%s: refusal %q does not say why", tc.name, r.body)
		}
	}
}

func mustB64(t testing.TB, body string) []byte {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(body), ""))
	if err != nil {
		t.Fatalf("response body is not base64: %v", err)
	}
	return der
}

// short is the start of a response body, for failure messages.
func short(body string) string {
	body = strings.TrimSpace(body)
	if len(body) > 120 {
		return body[:120] + "…"
	}
	return body
}
