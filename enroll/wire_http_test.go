package enroll_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/enroll"
)

// testContentTypes: RFC 7030 section 4.2.1 bodies are application/pkcs10.
// Another declared type is refused with 415 and a reason, before any
// credential is spent; a missing Content-Type and the RFC 8951 leniencies
// (base64 with or without Content-Transfer-Encoding, any line width) stay
// accepted.
func testContentTypes(t *testing.T, b *base) {
	needTools(t, "curl")
	e := newEnv(t, b, nil)
	der, _ := csr(t, "ct-dev.test")
	wrapped := []byte(strings.ReplaceAll(string(b64(der)), "A", "A\r\n")) // odd line breaks
	cred, _ := e.enrollDevice(t, "ct-renew.test")
	tests := []struct {
		name, path, ctype string
		hdr               map[string]string
		body              []byte
		want              int
	}{
		{"JSON at simpleenroll", "/simpleenroll", "application/json", nil, b64(der), 415},
		{"text at simpleenroll", "/simpleenroll", "text/plain", nil, b64(der), 415},
		{"form encoding (curl's default)", "/simpleenroll", "application/x-www-form-urlencoded", nil, b64(der), 415},
		{"JSON at simplereenroll", "/simplereenroll", "application/json", nil, b64(der), 415},
		{"JSON at serverkeygen", "/serverkeygen", "application/json", nil, b64(der), 415},
		{"garbage media type", "/simpleenroll", "{{{", nil, b64(der), 415},
		{"pkcs10 with a parameter, CTE header", "/simpleenroll", "application/PKCS10; charset=us-ascii", map[string]string{"Content-Transfer-Encoding": "base64"}, b64(der), 200},
		{"pkcs10, base64 with CRLF breaks, no CTE header", "/simpleenroll", "application/pkcs10", nil, wrapped, 200},
		{"no Content-Type", "/simpleenroll", "", nil, b64(der), 200},
	}
	for _, tc := range tests {
		u, p := e.token("default")
		c := e.client(nil)
		if tc.path == "/simplereenroll" {
			c = e.client(cred)
		}
		req, _ := http.NewRequest(http.MethodPost, e.url(tc.path), bytes.NewReader(tc.body))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		req.SetBasicAuth(u, p)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, resp.StatusCode, body, tc.want)
			continue
		}
		if tc.want != 415 {
			continue
		}
		if !strings.Contains(string(body), "application/pkcs10") {
			t.Errorf("%s: 415 body %q does not name application/pkcs10", tc.name, body)
		}
		// The refusal spent nothing: the token still enrolls.
		if r := post(t, e.client(nil), e.url("/simpleenroll"), u, p, b64(der), nil); r.code != 200 {
			t.Errorf("%s: token after the 415 = %d %q, want 200", tc.name, r.code, r.body)
		}
	}
	// curl without -H sends application/x-www-form-urlencoded.
	u, p := e.token("default")
	e.write("req.b64", b64(der))
	out := sh(t, e.dir, `curl -sS -w '\n%{http_code}' --cacert root.pem -u `+u+`:`+p+` --data-binary @req.b64 `+e.url("/simpleenroll"))
	if !strings.HasSuffix(out, "\n415") || !strings.Contains(out, "application/pkcs10") {
		t.Errorf("curl without Content-Type header: %q, want 415 naming application/pkcs10", out)
	}
}

// rawExchange sends one HTTP/1.1 request over its own TLS connection and
// returns the response exactly as the server wrote it: header names are
// not canonicalised, unlike in net/http's client.
func rawExchange(t *testing.T, e *testEnv, cert *tls.Certificate, method, path string, hdr map[string]string, body []byte) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Root())
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	u, _ := url.Parse(e.srv.URL)
	conn, err := tls.Dial("tcp", u.Host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s /.well-known/est%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n", method, path, u.Host, len(body))
	for k, v := range hdr {
		fmt.Fprintf(&req, "%s: %s\r\n", k, v)
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil && len(raw) == 0 {
		t.Fatal(err)
	}
	return string(raw)
}

// testHeaderSpelling: libest compares header names case-sensitively, so
// every EST response header is spelled as the RFCs spell it, checked on
// the raw bytes of the response.
func testHeaderSpelling(t *testing.T, b *base) {
	e := newEnv(t, b, func(c *enroll.Config) {
		c.Labels["held-hdr"] = enroll.Label{Profile: "device", Tokens: true, Approval: true}
	})
	der, _ := csr(t, "hdr-dev.test")
	u, p := e.token("default")
	hu, hp := e.token("held-hdr")
	pkcs10 := map[string]string{"Content-Type": "application/pkcs10"}
	basic := func(user, pass string) map[string]string {
		return map[string]string{"Content-Type": "application/pkcs10", "Authorization": "Basic " + string(b64([]byte(user+":"+pass)))}
	}
	tests := []struct {
		name       string
		method     string
		path       string
		hdr        map[string]string
		wantStatus string
		want       []string // exact header lines (name and the start of the value)
	}{
		{"401", "POST", "/simpleenroll", pkcs10, "401", []string{"WWW-Authenticate: Basic realm=\"EST\"", "Content-Type: text/plain"}},
		{"200 enroll", "POST", "/simpleenroll", basic(u, p), "200", []string{"Content-Type: application/pkcs7-mime; smime-type=certs-only", "Content-Transfer-Encoding: base64"}},
		{"200 cacerts", "GET", "/cacerts", nil, "200", []string{"Content-Type: application/pkcs7-mime", "Content-Transfer-Encoding: base64"}},
		{"200 csrattrs", "GET", "/csrattrs", nil, "200", []string{"Content-Type: application/csrattrs", "Content-Transfer-Encoding: base64"}},
		{"202 held", "POST", "/held-hdr/simpleenroll", basic(hu, hp), "202", []string{"Retry-After: 60"}},
		{"415", "POST", "/simpleenroll", map[string]string{"Content-Type": "application/json"}, "415", []string{"Content-Type: text/plain"}},
	}
	for _, tc := range tests {
		var body []byte
		if tc.method == "POST" {
			body = b64(der)
		}
		raw := rawExchange(t, e, nil, tc.method, tc.path, tc.hdr, body)
		head, _, _ := strings.Cut(raw, "\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.1 "+tc.wantStatus+" ") {
			t.Errorf("%s: status line %q, want %s", tc.name, strings.SplitN(head, "\r\n", 2)[0], tc.wantStatus)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(head, "\r\n"+w) {
				t.Errorf("%s: no header line %q in\n%s", tc.name, w, head)
			}
		}
		if strings.Contains(head, "Www-Authenticate") {
			t.Errorf("%s: header spelled Www-Authenticate:\n%s", tc.name, head)
		}
	}
}
