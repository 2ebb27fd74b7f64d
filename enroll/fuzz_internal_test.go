package enroll

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mica-pki/mica/ca"
)

// FuzzDecodeBody feeds what a client controls in a simpleenroll,
// simplereenroll or serverkeygen request, its Content-Type and its body,
// through the steps the handlers take before authentication: the
// content-type rule, the lenient body decoding (base64 at any width, PEM,
// raw DER), the PKCS#10 parse, the identity a CSR asks for and its
// challengePassword. None may panic; a refusal is a typed client error
// (415 or 400, never 500); an accepted body decodes to DER that is not
// empty; and a CSR's identity equals itself. The committed corpus is in
// testdata/fuzz/FuzzDecodeBody.
func FuzzDecodeBody(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "Device 17"},
		DNSNames: []string{"A.test"}}, key)
	if err != nil {
		f.Fatal(err)
	}
	enc := base64.StdEncoding.EncodeToString(der)
	f.Add("application/pkcs10", []byte(enc))
	f.Add("", []byte(strings.ReplaceAll(enc, "A", "A\r\n")))
	f.Add("application/pkcs10; charset=utf-8", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add("application/json", der)
	f.Add("application/x-www-form-urlencoded", []byte(base64.RawURLEncoding.EncodeToString(der)))
	f.Add("text/plain", []byte("-----BEGIN"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/.well-known/est/simpleenroll", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		if err := checkContentType(r); err != nil {
			if status(err) != http.StatusUnsupportedMediaType || ca.UserMessage(err) == "internal error" {
				t.Fatalf("Content-Type %q refused with %d %q, want 415 with a reason", contentType, status(err), ca.UserMessage(err))
			}
			return
		}
		got, err := readBody(httptest.NewRecorder(), r)
		if err != nil {
			if e := badBody(err); status(e) != http.StatusBadRequest {
				t.Fatalf("body refused with %d, want 400", status(e))
			}
			return
		}
		if len(got) == 0 {
			t.Fatal("an accepted body decoded to nothing")
		}
		csr, err := x509.ParseCertificateRequest(got)
		if err != nil {
			return
		}
		id := csrIdentity(csr)
		if m := id.mismatch(csrIdentity(csr)); m != "" {
			t.Fatalf("a CSR's identity differs from itself: %s", m)
		}
		_, _ = challengePassword(csr.RawTBSCertificateRequest)
		p := &principal{bound: &id, boundBy: "fuzz"}
		if err := p.checkIdentity(csr); err != nil && !errors.Is(err, ca.ErrPolicy) {
			t.Fatalf("checkIdentity: %v", err)
		}
	})
}
