package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// serialSpellings are ways people type the serial printed as want: what
// openssl prints, lower case, with colons, with a 0x prefix, without the
// leading zero octet openssl keeps, and with extra leading zeros.
func serialSpellings(want string) []string {
	lower := strings.ToLower(want)
	var colons []string
	for i := 0; i < len(lower); i += 2 {
		colons = append(colons, lower[i:i+2])
	}
	return []string{want, lower, strings.Join(colons, ":"), "0x" + want, strings.TrimLeft(lower, "0"), "0000" + want}
}

// TestSerialOneSpelling issues a certificate and looks it up by several
// spellings of its serial through the CLI, the admin API and the web UI of
// a running `mica dev`, then checks every surface prints it one way: the
// form `openssl x509 -serial` prints, in CLI text and JSON, API JSON, UI
// HTML and the server's log line.
func TestSerialOneSpelling(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	dir := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, dir)
	base := reHTTPS.FindString(d.stdout)
	if base == "" {
		t.Fatalf("no HTTPS URL in the banner:\n%s", d.stdout)
	}
	c := &tca{t: t, dir: dir}
	work := t.TempDir()
	leaf := filepath.Join(work, "leaf.pem")
	issued := c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "spelling.test"}), "--profile", "server", "--out", leaf)...)
	want := opensslSerial(t, leaf)
	// MICA serials start with the octet 01, so the stored form ("1…") and
	// the printed one ("01…") always differ by a leading zero.
	if !strings.HasPrefix(want, "01") || strings.ToUpper(want) != want {
		t.Fatalf("openssl printed serial %q; want upper-case hex starting 01", want)
	}
	if !strings.Contains(issued.stderr, "issued serial="+want+" ") {
		t.Errorf("cert issue printed:\n%s\nwant serial=%s", issued.stderr, want)
	}

	// CLI: every spelling finds it; text, JSON and list print want.
	for _, sp := range serialSpellings(want) {
		r := c.must(c.data("cert", "show", sp)...)
		if !regexp.MustCompile(`(?m)^Serial:\s+` + want + `\s`).MatchString(r.stdout) {
			t.Errorf("cert show %s:\n%s\nwant Serial: %s", sp, r.stdout, want)
		}
	}
	var shown struct {
		Serial string `json:"serial"`
	}
	if err := json.Unmarshal([]byte(c.must(c.data("cert", "show", strings.ToLower(want), "--json")...).stdout), &shown); err != nil || shown.Serial != want {
		t.Errorf("cert show --json serial = %q, %v; want %q", shown.Serial, err, want)
	}
	if l := c.list("--q", "spelling"); len(l) != 1 || l[0].Serial != want {
		t.Errorf("cert list --json = %+v; want one with serial %s", l, want)
	}

	// Admin API: every spelling in the path finds it; JSON prints want.
	token := lastLine(c.must(c.data("token", "create", "--role", "operator", "--label", "spelling")...).stdout)
	pool := x509.NewCertPool()
	for _, cert := range readCerts(t, filepath.Join(dir, rootPEM)) {
		pool.AddCert(cert)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Timeout: 10 * time.Second, Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	do := func(method, path, ctype, body string, bearer bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if bearer {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(raw)
	}
	for _, sp := range serialSpellings(want) {
		code, body := do("GET", "/api/v1/certificates/"+url.PathEscape(sp), "", "", true)
		var got struct {
			Serial string `json:"serial"`
		}
		if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil || got.Serial != want {
			t.Errorf("GET /api/v1/certificates/%s = %d serial %q (%v); want 200 %s", sp, code, got.Serial, err, want)
		}
	}
	code, body := do("GET", "/api/v1/certificates?q=spelling", "", "", true)
	if code != 200 || !regexp.MustCompile(`"serial":\s*"`+want+`"`).MatchString(body) {
		t.Errorf("API list = %d %s; want serial %s", code, body, want)
	}
	// A revocation through the API names the serial in the server's log
	// and in the audit object the API shows (and filters by).
	code, body = do("POST", "/api/v1/certificates/"+strings.ToLower(want)+"/revoke", "application/json", `{"reason":"superseded"}`, true)
	if code != 200 || !regexp.MustCompile(`"serial":\s*"`+want+`"`).MatchString(body) {
		t.Fatalf("API revoke = %d %s", code, body)
	}
	logLine := regexp.MustCompile(`certificate revoked.*`).FindString(d.stderr.String())
	if m := regexp.MustCompile(`serial"?[=:]"?([0-9A-Fa-f]+)`).FindStringSubmatch(logLine); m == nil || m[1] != want {
		t.Errorf("server log line %q; want serial=%s", logLine, want)
	}
	auditor := lastLine(c.must(c.data("token", "create", "--role", "auditor", "--label", "spelling")...).stdout)
	token = auditor
	code, body = do("GET", "/api/v1/events?object="+url.QueryEscape("cert:"+issuerOf(t, c, want)+"/"+strings.ToLower(want)), "", "", true)
	if code != 200 || !strings.Contains(body, `/`+want+`"`) || !strings.Contains(body, `"cert.revoke"`) {
		t.Errorf("API events by object = %d %s; want the cert.revoke event with object …/%s", code, body, want)
	}

	// Web UI: log in, open the page by several spellings, see want.
	pw := writeSecret(t, work, "pw", "spelling test password")
	c.must(c.data("user", "create", "ada", "--role", "viewer", "--password-file", pw)...)
	if code, body := do("POST", "/ui/login", "application/x-www-form-urlencoded",
		url.Values{"name": {"ada"}, "password": {"spelling test password"}}.Encode(), false); code != 200 || strings.Contains(body, "Wrong user name") {
		t.Fatalf("UI login = %d", code)
	}
	issuer := issuerOf(t, c, want)
	for _, sp := range serialSpellings(want) {
		code, body := do("GET", "/ui/certificates/"+issuer+"/"+url.PathEscape(sp), "", "", false)
		if code != 200 || !strings.Contains(body, "<dt>Serial</dt><dd><code>"+want+"</code></dd>") {
			t.Errorf("UI certificate page by %s = %d; want Serial %s", sp, code, want)
		}
	}
	code, body = do("GET", "/ui/certificates?q=spelling", "", "", false)
	if code != 200 || !strings.Contains(body, "<code>"+want+"</code>") {
		t.Errorf("UI list = %d; want <code>%s</code>", code, want)
	}
}

// issuerOf returns the issuer ID of the certificate with serial.
func issuerOf(t *testing.T, c *tca, serial string) string {
	t.Helper()
	for _, l := range c.list() {
		if l.Serial == serial {
			return l.IssuerID
		}
	}
	t.Fatalf("no certificate %s in cert list", serial)
	return ""
}
