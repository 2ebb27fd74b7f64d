package enroll_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory"
)

type result struct {
	code int
	hdr  http.Header
	body string
}

func post(t testing.TB, c *http.Client, u, user, pass string, body []byte, hdr map[string]string) result {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/pkcs10")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

func b64(der []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(der)) }

// enrollDevice enrolls cn with a fresh token and returns its TLS credential.
func (e *testEnv) enrollDevice(t *testing.T, cn string) (*tls.Certificate, *x509.Certificate) {
	return e.enrollDeviceB(t, cn)
}

// enrollDeviceB is enrollDevice for benchmarks.
func (e *testEnv) enrollDeviceB(t testing.TB, cn string) (*tls.Certificate, *x509.Certificate) {
	t.Helper()
	der, key := csr(t, cn)
	u, p := e.token("default")
	res := post(t, e.client(nil), e.url("/simpleenroll"), u, p, b64(der), nil)
	if res.code != 200 {
		t.Fatalf("enroll %s = %d %s", cn, res.code, res.body)
	}
	if res.hdr.Get("Content-Transfer-Encoding") != "base64" || !strings.HasPrefix(res.hdr.Get("Content-Type"), "application/pkcs7-mime") {
		t.Fatalf("enroll headers %v", res.hdr)
	}
	p7, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(res.body, "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := enroll.ParseCertsOnly(p7)
	if err != nil || len(certs) != 1 {
		t.Fatalf("parse enroll response: %v (%d certs)", err, len(certs))
	}
	return &tls.Certificate{Certificate: [][]byte{certs[0].Raw}, PrivateKey: key, Leaf: certs[0]}, certs[0]
}

func postB(b testing.TB, c *http.Client, u string, body []byte) int {
	return post(b, c, u, "", "", body, nil).code
}

// testRefusals covers each refusal: status, the header that goes with it,
// and that nothing was issued.
func testRefusals(t *testing.T, b *base) {
	st := b.store
	e := newEnv(t, b, func(c *enroll.Config) {
		c.TrustedProxies = []string{"10.9.9.9/32"}
		c.ClientCertHeader = "X-Client-Cert"
		c.Labels["limited"] = enroll.Label{Profile: "device", Tokens: true}
	})
	ctx := context.Background()
	plain := e.client(nil)
	good, _ := csr(t, "rf-ok")
	revokedCred, revokedCert := e.enrollDevice(t, "rf-revoked")
	if _, err := e.ca.Revoke(ctx, ca.RevokeRequest{Serial: revokedCert.SerialNumber.Text(16), Reason: "keyCompromise", Actor: "test", Protocol: "cli"}); err != nil {
		t.Fatal(err)
	}
	expiredCred, _ := e.enrollDevice(t, "rf-expired")
	liveCred, liveCert := e.enrollDevice(t, "rf-live")
	usedU, usedP := e.token("default")
	if r := post(t, plain, e.url("/simpleenroll"), usedU, usedP, b64(good), nil); r.code != 200 {
		t.Fatalf("first use of token = %d %s", r.code, r.body)
	}
	boundU, boundP := e.token("default", "other.test")
	liveCSR := func() []byte {
		der, _ := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{Subject: liveCert.Subject}, liveCred.PrivateKey.(*ecdsa.PrivateKey))
		return der
	}
	// RSA-1024 would be refused by policy as weak, but generating it is slow;
	// a DNS name outside the token's binding is the policy refusal here.
	nameCSR, _ := csr(t, "rf-x", "evil.test")
	livePEM := url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: liveCert.Raw})))

	tests := []struct {
		name       string
		path       string
		client     *http.Client
		user, pass string
		body       []byte
		hdr        map[string]string
		before     func()
		want       int
		wantHeader string
	}{
		{name: "no credentials", path: "/simpleenroll", body: b64(good), want: 401, wantHeader: "WWW-Authenticate"},
		{name: "wrong password", path: "/simpleenroll", user: usedU, pass: "nope", body: b64(good), want: 401, wantHeader: "WWW-Authenticate"},
		{name: "unknown token", path: "/simpleenroll", user: "est-nobody", pass: "x", body: b64(good), want: 401},
		{name: "token reuse", path: "/simpleenroll", user: usedU, pass: usedP, body: b64(good), want: 401},
		{name: "names outside token binding", path: "/simpleenroll", user: boundU, pass: boundP, body: b64(nameCSR), want: 403},
		{name: "malformed base64", path: "/simpleenroll", user: boundU, pass: boundP, body: []byte("!!!not base64!!!"), want: 400},
		{name: "not a CSR", path: "/simpleenroll", user: boundU, pass: boundP, body: b64([]byte("hello")), want: 400},
		{name: "body too large", path: "/simpleenroll", user: boundU, pass: boundP, body: bytes.Repeat([]byte("A"), 70<<10), want: 400},
		{name: "unknown label", path: "/nosuch/simpleenroll", user: boundU, pass: boundP, body: b64(good), want: 404},
		{name: "label needs client cert", path: "/certonly/simpleenroll", user: boundU, pass: boundP, body: b64(good), want: 401},
		{name: "reenroll without cert", path: "/simplereenroll", body: b64(good), want: 401},
		{name: "reenroll revoked cert", path: "/simplereenroll", client: e.client(revokedCred), body: b64(good), want: 401},
		{name: "reenroll expired cert", path: "/simplereenroll", client: e.client(expiredCred), body: b64(good),
			before: func() { e.offset.Store(int64(400 * 24 * time.Hour / time.Second)) }, want: 401},
		{name: "reenroll changes names", path: "/simplereenroll", client: e.client(liveCred), body: b64(nameCSR),
			before: func() { e.offset.Store(0) }, want: 403},
		{name: "proxy header from untrusted address", path: "/simplereenroll", body: b64(liveCSR()),
			hdr: map[string]string{"X-Client-Cert": livePEM}, want: 401},
	}
	for _, tc := range tests {
		if tc.before != nil {
			tc.before()
		}
		c := tc.client
		if c == nil {
			c = plain
		}
		before, _ := st.FindCertificates(ctx, inventory.CertFilter{Text: "rf-", Limit: 1000})
		r := post(t, c, e.url(tc.path), tc.user, tc.pass, tc.body, tc.hdr)
		if r.code != tc.want {
			t.Errorf("%s: status = %d (%q), want %d", tc.name, r.code, r.body, tc.want)
		}
		if tc.wantHeader != "" && r.hdr.Get(tc.wantHeader) == "" {
			t.Errorf("%s: no %s header", tc.name, tc.wantHeader)
		}
		after, _ := st.FindCertificates(ctx, inventory.CertFilter{Text: "rf-", Limit: 1000})
		if len(after) != len(before) {
			t.Errorf("%s: %d certificates recorded on a refusal", tc.name, len(after)-len(before))
		}
	}
	// The bound token was not burnt by the refusals it was used in.
	okCSR, _ := csr(t, "other.test", "other.test")
	if r := post(t, plain, e.url("/simpleenroll"), boundU, boundP, b64(okCSR), nil); r.code != 200 {
		t.Errorf("bound token after refusals = %d %s, want 200", r.code, r.body)
	}
	// Refusals are audited with reason and source.
	evs, err := st.Events(ctx, inventory.EventFilter{Action: "est.simplereenroll", Limit: 100})
	if err != nil || len(evs) == 0 {
		t.Fatalf("no EST audit events: %v", err)
	}
	for _, ev := range evs {
		if ev.Outcome != "denied" || ev.Source == "" || !strings.Contains(string(ev.Details), "reason") {
			t.Errorf("refusal event %+v lacks outcome, source or reason", ev)
		}
	}
}

// testProxyHeader: the same header from a trusted proxy address is believed.
func testProxyHeader(t *testing.T, b *base) {
	e := newEnv(t, b, func(c *enroll.Config) {
		c.TrustedProxies = []string{"127.0.0.1/32"}
		c.ClientCertHeader = "X-Client-Cert"
	})
	cred, cert := e.enrollDevice(t, "dev-proxied")
	der, _ := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{Subject: cert.Subject}, cred.PrivateKey.(*ecdsa.PrivateKey))
	hdr := map[string]string{"X-Client-Cert": url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})))}
	if r := post(t, e.client(nil), e.url("/simplereenroll"), "", "", b64(der), hdr); r.code != 200 {
		t.Fatalf("re-enroll through trusted proxy = %d %s", r.code, r.body)
	}
	// Behind a trusted proxy, the client address is the one the proxy
	// appended to X-Forwarded-For: that is what refusals are audited with.
	xff := map[string]string{"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
	if r := post(t, e.client(nil), e.url("/simpleenroll"), "", "", b64(der), xff); r.code != 401 {
		t.Fatalf("enroll without credentials = %d, want 401", r.code)
	}
	evs, err := b.store.Events(context.Background(), inventory.EventFilter{Action: "est.simpleenroll", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs {
		found = found || ev.Source == "198.51.100.7"
	}
	if !found {
		t.Errorf("no refusal audited with the forwarded source 198.51.100.7")
	}
}

// testRateLimit: the fixed window answers 429 with Retry-After.
func testRateLimit(t *testing.T, b *base) {
	e := newEnv(t, b, func(c *enroll.Config) { c.RateLimit = 2; c.RateWindow = time.Hour })
	der, _ := csr(t, "dev-r")
	var last result
	for range 3 {
		last = post(t, e.client(nil), e.url("/simpleenroll"), "", "", b64(der), nil)
	}
	if last.code != 429 || last.hdr.Get("Retry-After") == "" {
		t.Fatalf("third request = %d (Retry-After %q), want 429 with Retry-After", last.code, last.hdr.Get("Retry-After"))
	}
}
