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
	"encoding/asn1"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ocsp"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/status"
)

type env struct {
	ca      *ca.CA
	issuing *x509.Certificate
	root    *x509.Certificate
	h       http.Handler
	leaf    *x509.Certificate
	store   *inventory.Store
}

func newEnv(tb testing.TB) *env { return buildEnv(tb, nil) }

// buildEnv makes a CA on a fresh SQLite store with one issued leaf and a
// first CRL, served through the real router. wrap, when set, wraps the key
// backend (to count signatures).
func buildEnv(tb testing.TB, wrap func(hsm.Backend) hsm.Backend) *env {
	tb.Helper()
	ctx := context.Background()
	st := inventorytest.SQLite(tb)
	soft, err := hsm.Open(ctx, hsm.Config{URI: hsm.SoftKMSURI(tb.TempDir()), Secret: hsm.NewSecret([]byte("correct horse battery staple"))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { soft.Close() })
	var keys hsm.Backend = soft
	if wrap != nil {
		keys = wrap(soft)
	}
	urls := ca.URLs{CRLBase: "http://ca.test/crl/", OCSP: "http://ca.test/ocsp"}
	res, err := ca.Init(ctx, ca.InitOptions{Store: st, Keys: keys, URLs: urls, Actor: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := ca.New(ctx, ca.Options{Store: st, Keys: keys, URLs: urls, RevocationStore: st})
	if err != nil {
		tb.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a.test"}, DNSNames: []string{"a.test"}}, key)
	iss, err := c.Issue(ctx, ca.Request{CSR: csr, Profile: "server", Requester: "t", Protocol: "cli"})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.GenerateCRLs(ctx, ""); err != nil {
		tb.Fatal(err)
	}
	r := chi.NewRouter()
	status.New(c, nil, prometheus.NewRegistry()).Mount(chi.NewRouter(), r)
	return &env{ca: c, issuing: res.Issuing, root: res.Root, h: r, leaf: iss.Certificate, store: st}
}

func (e *env) do(method, path string, body []byte, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://ca.test"+path, bytes.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

func TestHandlers(t *testing.T) {
	e := newEnv(t)
	w := e.do("GET", "/crl/"+e.ca.IssuerID()+".crl", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET CRL = %d %v", w.Code, w.Header())
	}
	if _, err := x509.ParseRevocationList(w.Body.Bytes()); err != nil {
		t.Fatal(err)
	}
	lm := w.Header().Get("Last-Modified")
	if w2 := e.do("GET", "/crl/"+e.ca.IssuerID()+".crl", nil, "If-Modified-Since", lm); w2.Code != http.StatusNotModified {
		t.Errorf("If-Modified-Since: %d, want 304", w2.Code)
	}

	plain, _ := ocsp.CreateRequest(e.leaf, e.issuing, &ocsp.RequestOptions{Hash: crypto.SHA1})
	// A request whose standard base64 contains both "//" and "+": the
	// cases path cleaning and form decoding break. Built, not hoped for.
	req, std := slashPlusRequest(t, plain)
	if !strings.Contains(std, "//") || !strings.Contains(std, "+") {
		t.Fatalf("constructed request %s lacks // or +", std)
	}
	for _, path := range []string{"/ocsp/" + std, "/ocsp/" + strings.ReplaceAll(std, "/", "%2F"), "/ocsp/" + base64.RawURLEncoding.EncodeToString(req)} {
		w := e.do("GET", path, nil)
		resp, err := ocsp.ParseResponseForCert(w.Body.Bytes(), e.leaf, e.issuing)
		if err != nil || resp.Status != ocsp.Good || !strings.Contains(w.Header().Get("Cache-Control"), "max-age") {
			t.Errorf("GET %s: %v %v %v", path, resp, err, w.Header())
		}
	}
	w = e.do("POST", "/ocsp", req, "Content-Type", "application/ocsp-request")
	if resp, err := ocsp.ParseResponseForCert(w.Body.Bytes(), e.leaf, e.issuing); err != nil || resp.Status != ocsp.Good {
		t.Errorf("POST: %v %v", resp, err)
	}
	for _, tc := range []struct{ method, path string }{{"GET", "/ocsp/%25zz"}, {"GET", "/ocsp/"}, {"POST", "/ocsp"}} {
		if w := e.do(tc.method, tc.path, make([]byte, 20_000)); w.Body.String() != "\x30\x03\x0a\x01\x01" || w.Code != 200 {
			t.Errorf("%s %s = %d %x, want malformedRequest", tc.method, tc.path, w.Code, w.Body.Bytes())
		}
	}
}

// BenchmarkOCSPHandler compares, through the real router and handler,
// answering from a pre-signed response, signing live for a nonce request,
// and a handler that writes a constant byte slice (the HTTP floor).
func BenchmarkOCSPHandler(b *testing.B) {
	e := newEnv(b)
	plain, _ := ocsp.CreateRequest(e.leaf, e.issuing, &ocsp.RequestOptions{Hash: crypto.SHA1})
	nonce := withNonce(b, plain)
	constant := bytes.Repeat([]byte{0x30}, 300)
	cr := chi.NewRouter()
	cr.Post("/ocsp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(constant)
	})
	for _, bc := range []struct {
		name string
		h    http.Handler
		body []byte
	}{{"presigned", e.h, plain}, {"nonce", e.h, nonce}, {"constant", cr, plain}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("POST", "http://ca.test/ocsp", bytes.NewReader(bc.body))
					req.Header.Set("Content-Type", "application/ocsp-request")
					w := httptest.NewRecorder()
					bc.h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatal(w.Code)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "responses/s")
		})
	}
}
func withNonce(t testing.TB, der []byte) []byte {
	t.Helper()
	type tbs struct {
		RequestList []asn1.RawValue
		Ext         []pkix.Extension `asn1:"explicit,tag:2,optional"`
	}
	var in struct{ TBS tbs }
	if _, err := asn1.Unmarshal(der, &in); err != nil {
		t.Fatal(err)
	}
	val, _ := asn1.Marshal([]byte("0123456789abcdef"))
	in.TBS.Ext = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}, Value: val}}
	out, err := asn1.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// slashPlusRequest returns plain with a requestorName inserted whose
// payload makes the standard base64 of the whole request contain "//"
// and "+", and that base64. The responder skips requestorName (RFC 6960
// §4.1.1 lets a client name itself), so the answer is still the
// pre-signed, cacheable one for the same CertID. The payload FF FF BE
// encodes as "//++" when it starts on a 3-byte boundary; one of three
// pad lengths puts it there.
func slashPlusRequest(t *testing.T, plain []byte) ([]byte, string) {
	t.Helper()
	var outer struct{ TBS asn1.RawValue }
	if rest, err := asn1.Unmarshal(plain, &outer); err != nil || len(rest) != 0 {
		t.Fatalf("parsing OCSP request: %v", err)
	}
	mustMarshal := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tagged := func(class, tag int, parts ...[]byte) []byte {
		return mustMarshal(asn1.RawValue{Class: class, Tag: tag, IsCompound: true, Bytes: bytes.Join(parts, nil)})
	}
	for pad := 0; pad < 3; pad++ {
		payload := append(make([]byte, pad), 0xff, 0xff, 0xbe, 0xff, 0xff, 0xbe)
		// requestorName [1] EXPLICIT GeneralName; otherName [0] { type-id, [0] EXPLICIT OCTET STRING }.
		otherName := tagged(asn1.ClassContextSpecific, 0,
			mustMarshal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1}),
			tagged(asn1.ClassContextSpecific, 0, mustMarshal(payload)))
		tbs := tagged(asn1.ClassUniversal, asn1.TagSequence, tagged(asn1.ClassContextSpecific, 1, otherName), outer.TBS.Bytes)
		der := tagged(asn1.ClassUniversal, asn1.TagSequence, tbs)
		std := base64.StdEncoding.EncodeToString(der)
		if strings.Contains(std, "//") && strings.Contains(std, "+") {
			return der, std
		}
	}
	t.Fatal("no pad length gives // and + in the base64")
	return nil, ""
}
