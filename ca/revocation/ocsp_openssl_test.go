package revocation

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// responderState is what the test responder knows: revoked serials, the
// set of serials it issued, and whether a delegated responder signs.
type responderState struct {
	mu         sync.Mutex
	ca         *testCA
	issued     map[string]bool
	revoked    map[string]int // serial hex → reason
	delegate   *x509.Certificate
	delegateK  crypto.Signer
	lastNonce  []byte
	lastStatus Status
	// corruptNonce echoes a wrong nonce: the negative control proving that
	// openssl really checks what we send back.
	corruptNonce bool
}

// ServeHTTP is the shape of the real handler: parse, decide, sign; every
// refusal is one of the constant responses.
func (s *responderState) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", OCSPResponseContentType)
	var der []byte
	var err error
	if r.Method == http.MethodGet {
		der, err = DecodeGETRequest(strings.TrimPrefix(r.URL.EscapedPath(), "/"))
	} else {
		der, err = io.ReadAll(io.LimitReader(r.Body, MaxRequestSize+1))
	}
	var req *Request
	if err == nil {
		req, err = ParseRequest(der)
	}
	if err != nil {
		io.WriteString(w, MalformedRequestResponse)
		return
	}
	if !req.MatchesIssuer(s.ca.issuing) {
		io.WriteString(w, UnauthorizedResponse)
		return
	}
	now := time.Now()
	resp := Response{CertID: req.CertID, Nonce: req.Nonce, ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(24 * time.Hour)}
	s.mu.Lock()
	key := req.Serial.Text(16)
	switch reason, revoked := s.revoked[key]; {
	case revoked:
		resp.Status, resp.RevokedAt, resp.Reason = Revoked, now.Add(-time.Minute), reason
	case s.issued[key]:
		resp.Status = Good
	default:
		resp.Status = Unknown
	}
	s.lastNonce, s.lastStatus = req.Nonce, resp.Status
	if s.corruptNonce && resp.Nonce != nil {
		resp.Nonce = bytes.Clone(resp.Nonce)
		resp.Nonce[len(resp.Nonce)-1] ^= 1
	}
	delegate, signer := s.delegate, s.delegateK
	s.mu.Unlock()
	if delegate == nil {
		signer = s.ca.issuingKey
	}
	out, err := CreateResponse(s.ca.issuing, delegate, signer, resp)
	if err != nil {
		io.WriteString(w, InternalErrorResponse)
		return
	}
	w.Write(out)
}

// TestOCSPOpenSSL runs the real `openssl ocsp` client against CreateResponse
// output served over HTTP on 127.0.0.1.
func TestOCSPOpenSSL(t *testing.T) {
	for _, kind := range []string{"p256", "p384", "rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) { testOCSPOpenSSL(t, kind) })
	}
}

func testOCSPOpenSSL(t *testing.T, kind string) {
	ca := newTestCA(t, kind)
	leaf := ca.leaf(t, "leaf", "")
	state := &responderState{ca: ca, issued: map[string]bool{leaf.SerialNumber.Text(16): true}, revoked: map[string]int{}}
	srv := httptest.NewServer(state)
	defer srv.Close()
	query := func(extra ...string) string {
		t.Helper()
		// Digest options such as -sha256 must precede -cert.
		args := append(append([]string{"ocsp"}, extra...), "-issuer", "issuing.pem", "-cert", "leaf.pem", "-url", srv.URL+"/", "-CAfile", "root.pem", "-resp_text", "-timeout", "10")
		out, err := openssl(t, ca.dir, args...)
		if err != nil {
			t.Fatalf("openssl ocsp %v: %v\n%s", extra, err, out)
		}
		if !strings.Contains(out, "Response verify OK") || strings.Contains(out, "WARNING: no nonce in response") || strings.Contains(out, "Nonce Verify error") {
			t.Fatalf("openssl ocsp %v did not verify cleanly:\n%s", extra, out)
		}
		t.Logf("openssl ocsp %v:\n%s", extra, out)
		return out
	}
	lastNonce := func() []byte { state.mu.Lock(); defer state.mu.Unlock(); return state.lastNonce }

	out := query("-nonce")
	if !strings.Contains(out, "leaf.pem: good") || !strings.Contains(out, "OCSP Nonce") || len(lastNonce()) == 0 {
		t.Fatalf("good with nonce:\n%s", out)
	}
	if kind != "p256" {
		return // the rest exercises responder logic, not the signature algorithm
	}
	if out = query("-no_nonce"); !strings.Contains(out, "leaf.pem: good") || strings.Contains(out, "OCSP Nonce") || lastNonce() != nil {
		t.Fatalf("good without nonce:\n%s", out)
	}
	if out = query("-nonce", "-sha256"); !strings.Contains(out, "leaf.pem: good") || !strings.Contains(out, "Hash Algorithm: sha256") {
		t.Fatalf("SHA-256 CertID:\n%s", out)
	}

	state.mu.Lock()
	state.revoked[leaf.SerialNumber.Text(16)] = ReasonKeyCompromise
	state.mu.Unlock()
	for _, nonce := range []string{"-nonce", "-no_nonce"} {
		if out = query(nonce); !strings.Contains(out, "leaf.pem: revoked") || !strings.Contains(out, "Reason: keyCompromise") {
			t.Fatalf("revoked %s:\n%s", nonce, out)
		}
	}

	// A delegated responder certificate (EKU OCSPSigning, ocsp-nocheck)
	// signs instead of the CA; openssl must accept the delegation.
	state.mu.Lock()
	state.delegate, state.delegateK = ca.delegatedResponder(t)
	state.mu.Unlock()
	if out = query("-nonce"); !strings.Contains(out, "leaf.pem: revoked") || !strings.Contains(out, "MICA Test OCSP Responder") {
		t.Fatalf("delegated:\n%s", out)
	}

	state.mu.Lock()
	state.corruptNonce = true
	state.mu.Unlock()
	out, err := openssl(t, ca.dir, "ocsp", "-issuer", "issuing.pem", "-cert", "leaf.pem", "-url", srv.URL+"/", "-CAfile", "root.pem", "-nonce", "-timeout", "10")
	if err == nil || !strings.Contains(out, "Nonce Verify error") {
		t.Fatalf("openssl did not notice a wrong nonce: %v\n%s", err, out)
	}
	state.mu.Lock()
	state.corruptNonce = false
	state.mu.Unlock()

	// A serial we never issued is "unknown", still signed and verified.
	stranger := ca.leaf(t, "stranger", "")
	_ = stranger
	out, err = openssl(t, ca.dir, "ocsp", "-issuer", "issuing.pem", "-cert", "stranger.pem", "-url", srv.URL+"/", "-CAfile", "root.pem", "-nonce", "-timeout", "10")
	if err != nil || !strings.Contains(out, "stranger.pem: unknown") || !strings.Contains(out, "Response verify OK") {
		t.Fatalf("unknown: %v\n%s", err, out)
	}

	// A certificate from another CA: unauthorized, which openssl reports
	// as a responder error.
	foreign := newTestCA(t, "p256")
	foreign.leaf(t, "alien", "")
	out, _ = openssl(t, foreign.dir, "ocsp", "-issuer", "issuing.pem", "-cert", "alien.pem", "-url", srv.URL+"/", "-CAfile", "root.pem", "-timeout", "10")
	if !strings.Contains(out, "unauthorized") {
		t.Fatalf("foreign issuer:\n%s", out)
	}
}

// TestOCSPGET sends an RFC 6960 Appendix A.1 GET request, base64 in the
// path, through the same handler.
func TestOCSPGET(t *testing.T) {
	ca := newTestCA(t, "p256")
	leaf := ca.leaf(t, "leaf", "")
	srv := httptest.NewServer(&responderState{ca: ca, issued: map[string]bool{leaf.SerialNumber.Text(16): true}})
	defer srv.Close()
	reqDER, err := ocsp.CreateRequest(leaf, ca.issuing, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range []string{
		strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(base64.StdEncoding.EncodeToString(reqDER)),
		base64.RawURLEncoding.EncodeToString(reqDER),
	} {
		res, err := http.Get(srv.URL + "/" + enc)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		got, err := ocsp.ParseResponseForCert(body, leaf, ca.issuing)
		if err != nil || got.Status != ocsp.Good {
			t.Fatalf("GET %s: %v %+v", enc, err, got)
		}
	}
}
