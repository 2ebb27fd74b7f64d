package web_test

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/web"
)

// TestHTMXIntegrity recomputes the vendored htmx's SRI hash (go generate
// runs it): the constant the pages use must match the file shipped.
func TestHTMXIntegrity(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("static/htmx.min.js")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum384(b)
	if got := "sha384-" + base64.StdEncoding.EncodeToString(sum[:]); got != web.HTMXIntegrity {
		t.Fatalf("static/htmx.min.js has integrity %s, web.HTMXIntegrity says %s", got, web.HTMXIntegrity)
	}
}

type uiEnv struct {
	srv   *httptest.Server
	store *inventory.Store
	certs []*inventory.Certificate
}

func newUI(t *testing.T) *uiEnv {
	t.Helper()
	s := inventorytest.SQLite(t)
	inventorytest.Issuer(t, s, "ca")
	e := &uiEnv{store: s}
	for _, cn := range []string{"alpha.test", "beta.test", "=cmd.test"} {
		e.certs = append(e.certs, inventorytest.Issue(t, s, inventory.Certificate{IssuerID: "ca", Serial: inventorytest.RandomSerial(t),
			CommonName: cn, SANs: []string{"dns:x.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 24 * time.Hour),
			Profile: "server", Protocol: "acme"}))
	}
	for name, role := range map[string]string{"ada": "operator", "vic": "viewer", "aud": "auditor", "root": "admin"} {
		h, err := web.HashPassword("correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(context.Background(), inventory.User{Name: name, Role: role, PasswordHash: h}, inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	r := chi.NewRouter()
	web.New(s, &fakeRevoker{store: s}, slog.New(slog.DiscardHandler)).WithJobChecker(loopbackOnly).Mount(r, chi.NewRouter())
	e.srv = httptest.NewTLSServer(r)
	t.Cleanup(e.srv.Close)
	return e
}

// client returns a logged-in browser-like client (cookie jar, no
// automatic redirects followed past the first page).
func (e *uiEnv) client(t *testing.T, user, pw string) (*http.Client, int) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := *e.srv.Client()
	c.Jar = jar
	res, err := c.PostForm(e.srv.URL+"/ui/login", url.Values{"name": {user}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return &c, res.StatusCode
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

func TestUILoginPagesAndRevoke(t *testing.T) {
	t.Parallel()
	e := newUI(t)
	anonC := *e.srv.Client()
	anon := &anonC
	anon.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if code, _, _ := get(t, anon, e.srv.URL+"/ui/certificates"); code != http.StatusSeeOther {
		t.Errorf("anonymous /ui/certificates = %d, want 303 to login", code)
	}
	code, body, h := get(t, anon, e.srv.URL+"/ui/login")
	if code != 200 || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") || h.Get("X-Content-Type-Options") != "nosniff" ||
		h.Get("Referrer-Policy") != "no-referrer" || strings.Contains(body, "<script>") || !strings.Contains(html.UnescapeString(body), web.HTMXIntegrity) {
		t.Errorf("login page: %d, headers %v", code, h)
	}
	if _, code := e.client(t, "ada", "wrong password!!"); code != http.StatusUnauthorized {
		t.Errorf("wrong password = %d, want 401", code)
	}
	if _, code := e.client(t, "nobody", "correct horse battery"); code != http.StatusUnauthorized {
		t.Errorf("unknown user = %d, want 401", code)
	}
	op, code := e.client(t, "ada", "correct horse battery")
	if code != 200 {
		t.Fatalf("login = %d", code)
	}
	if err := e.store.PutESTPoolKeys(context.Background(), "iot-pool", "EC-P256", [][]byte{{1}, {2}, {3}}); err != nil {
		t.Fatal(err)
	}
	code, body, _ = get(t, op, e.srv.URL+"/ui/")
	if code != 200 || !strings.Contains(body, "Certificates by state") || !strings.Contains(body, "<svg") ||
		!strings.Contains(body, "<td>iot-pool</td><td>EC-P256</td><td>3</td>") {
		t.Errorf("dashboard = %d", code)
	}
	code, body, _ = get(t, op, e.srv.URL+"/ui/certificates?q=alpha&state=issued&owner=")
	if code != 200 || !strings.Contains(body, "alpha.test") || strings.Contains(body, "beta.test") {
		t.Errorf("filtered table = %d:\n%s", code, body)
	}
	_, csv, h := get(t, op, e.srv.URL+"/ui/certificates.csv")
	if !strings.Contains(h.Get("Content-Disposition"), "certificates.csv") || !strings.Contains(csv, "'=cmd.test") || strings.Count(csv, "\n") != 4 {
		t.Errorf("CSV export:\n%s", csv)
	}
	target := e.certs[0]
	page := e.srv.URL + "/ui/certificates/ca/" + target.Serial
	if code, body, _ = get(t, op, page); code != 200 || !strings.Contains(body, `id="revoke"`) {
		t.Fatalf("certificate page = %d", code)
	}
	if code, pem, _ := get(t, op, page+".pem"); code != 200 || !strings.HasPrefix(pem, "-----BEGIN CERTIFICATE-----") {
		t.Errorf("PEM download = %d", code)
	}
	// A cross-site POST is refused by http.CrossOriginProtection.
	req, _ := http.NewRequest("POST", page+"/revoke", strings.NewReader("reason=keyCompromise"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, err := op.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site revoke = %d, want 403", res.StatusCode)
	}
	vic, _ := e.client(t, "vic", "correct horse battery")
	res, err = vic.PostForm(page+"/revoke", url.Values{"reason": {"keyCompromise"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("viewer revoke = %d, want 403", res.StatusCode)
	}
	res, err = op.PostForm(page+"/revoke", url.Values{"reason": {"keyCompromise"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), "Certificate revoked.") || !strings.Contains(string(b), "revoked (keyCompromise)") {
		t.Errorf("revoke = %d:\n%s", res.StatusCode, b)
	}
	aud, _ := e.client(t, "aud", "correct horse battery")
	if code, _, _ := get(t, aud, e.srv.URL+"/ui/certificates"); code != http.StatusForbidden {
		t.Errorf("auditor certificates = %d, want 403", code)
	}
	if code, body, _ := get(t, aud, e.srv.URL+"/ui/audit?action=ui."); code != 200 || !strings.Contains(body, "ui.login") || !strings.Contains(body, "denied") {
		t.Errorf("audit page = %d", code)
	}
	root, _ := e.client(t, "root", "correct horse battery")
	for _, p := range []string{"/ui/users", "/ui/issuers", "/ui/discovery", "/ui/audit"} {
		if code, _, _ := get(t, root, e.srv.URL+p); code != 200 {
			t.Errorf("admin %s = %d", p, code)
		}
	}
	if code, _, _ := get(t, op, e.srv.URL+"/ui/users"); code != http.StatusForbidden {
		t.Errorf("operator /ui/users = %d, want 403", code)
	}
	evs, _ := e.store.Events(context.Background(), inventory.EventFilter{Action: "ui.access"})
	if len(evs) < 2 {
		t.Errorf("denied UI accesses audited %d times, want >= 2", len(evs))
	}
}

func TestUILoginThrottle(t *testing.T) {
	t.Parallel()
	e := newUI(t)
	for range inventory.MaxFailedLogins {
		e.client(t, "vic", "not the password")
	}
	if _, code := e.client(t, "vic", "correct horse battery"); code != http.StatusUnauthorized {
		t.Errorf("login after %d failures = %d, want 401 (locked)", inventory.MaxFailedLogins, code)
	}
}
