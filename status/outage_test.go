package status_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ocsp"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/status"
)

// TestOutageAnswers: with the database gone (the store closed under the
// running handler), a CRL request is 503 with Retry-After and a body, and
// an OCSP request gets the unsigned OCSP tryLater response (RFC 6960
// section 2.3: a relying party understands it and retries) — never a 500,
// an empty body or internalError.
func TestOutageAnswers(t *testing.T) {
	ctx := context.Background()
	st := inventorytest.SQLite(t)
	keys, err := hsm.Open(ctx, hsm.Config{URI: hsm.SoftKMSURI(t.TempDir()), Secret: hsm.NewSecret([]byte("correct horse battery staple"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	urls := ca.URLs{CRLBase: "http://ca.test/crl/", OCSP: "http://ca.test/ocsp"}
	res, err := ca.Init(ctx, ca.InitOptions{Store: st, Keys: keys, URLs: urls, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(ctx, ca.Options{Store: st, Keys: keys, URLs: urls, RevocationStore: st})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a.test"}, DNSNames: []string{"a.test"}}, key)
	iss, err := c.Issue(ctx, ca.Request{CSR: csr, Profile: "server", Requester: "t", Protocol: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.GenerateCRLs(ctx, ""); err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	status.New(c, nil, prometheus.NewRegistry()).Mount(chi.NewRouter(), r)
	do := func(method, path string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "http://ca.test"+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/ocsp-request")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w
	}
	crlPath := "/crl/" + c.IssuerID() + ".crl"
	if w := do("GET", crlPath, nil); w.Code != 200 {
		t.Fatalf("CRL before the outage: %d", w.Code)
	}

	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	w := do("GET", crlPath, nil)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || w.Body.Len() == 0 {
		t.Errorf("CRL during the outage: %d Retry-After %q body %q; want 503 with Retry-After and a body", w.Code, w.Header().Get("Retry-After"), w.Body.String())
	}
	req, _ := ocsp.CreateRequest(iss.Certificate, res.Issuing, &ocsp.RequestOptions{Hash: crypto.SHA1})
	w = do("POST", "/ocsp", req)
	resp, err := ocsp.ParseResponse(w.Body.Bytes(), nil)
	if w.Code >= 500 || w.Body.Len() == 0 || err == nil || resp != nil {
		t.Fatalf("OCSP during the outage: %d %x (%v); want an OCSP error response", w.Code, w.Body.Bytes(), err)
	}
	if re, ok := err.(ocsp.ResponseError); !ok || re.Status != ocsp.TryLater {
		t.Errorf("OCSP during the outage: %v; want tryLater", err)
	}
}
