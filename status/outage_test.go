package status_test

import (
	"crypto"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/crypto/ocsp"
)

// TestOutageAnswers: with the database gone (the store closed under the
// running handler), a CRL request is 503 with Retry-After and a body, and
// an OCSP request gets the unsigned OCSP tryLater response (RFC 6960
// section 2.3: a relying party understands it and retries) — never a 500,
// an empty body or internalError.
func TestOutageAnswers(t *testing.T) {
	e := newEnv(t)
	do := func(method, path string, body []byte) *httptest.ResponseRecorder {
		return e.do(method, path, body, "Content-Type", "application/ocsp-request")
	}
	crlPath := "/crl/" + e.ca.IssuerID() + ".crl"
	if w := do("GET", crlPath, nil); w.Code != 200 {
		t.Fatalf("CRL before the outage: %d", w.Code)
	}

	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	w := do("GET", crlPath, nil)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || w.Body.Len() == 0 {
		t.Errorf("CRL during the outage: %d Retry-After %q body %q; want 503 with Retry-After and a body", w.Code, w.Header().Get("Retry-After"), w.Body.String())
	}
	req, _ := ocsp.CreateRequest(e.leaf, e.issuing, &ocsp.RequestOptions{Hash: crypto.SHA1})
	w = do("POST", "/ocsp", req)
	resp, err := ocsp.ParseResponse(w.Body.Bytes(), nil)
	if w.Code >= 500 || w.Body.Len() == 0 || err == nil || resp != nil {
		t.Fatalf("OCSP during the outage: %d %x (%v); want an OCSP error response", w.Code, w.Body.Bytes(), err)
	}
	if re, ok := err.(ocsp.ResponseError); !ok || re.Status != ocsp.TryLater {
		t.Errorf("OCSP during the outage: %v; want tryLater", err)
	}
}
