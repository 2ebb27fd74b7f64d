package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/web"
)

// pgSwitch is a TCP proxy in front of the test PostgreSQL that the test
// can take down (every connection cut, new ones closed at once: what a
// client sees when the server or the network goes away) and bring back.
type pgSwitch struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func newPGSwitch(t *testing.T, target string) *pgSwitch {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgSwitch{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.set(true) })
	go p.serve()
	return p
}

func (p *pgSwitch) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); s.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, s); s.Close(); c.Close() }()
	}
}

// set takes the database down (true) or brings it back (false).
func (p *pgSwitch) set(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// TestOutageAnswered503: while the database is unreachable, the admin
// API answers 503 with a JSON error and Retry-After, the UI a 503 page
// with Retry-After (not a redirect to the login form, which would look
// like a logout), the login form 503 — never 500, never an empty body,
// never the driver's error. When the database returns, the same
// requests succeed without a restart.
func TestOutageAnswered503(t *testing.T) {
	dsn := inventorytest.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	sw := newPGSwitch(t, u.Host)
	u.Host = sw.ln.Addr().String()
	ctx := context.Background()
	st, err := inventory.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inventorytest.Issuer(t, st, "ca")
	bearer, _, err := st.CreateAPIToken(ctx, inventory.RoleAdmin, "test", inventory.Event{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := web.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, inventory.User{Name: "ada", Role: "operator", PasswordHash: h}, inventory.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	web.New(st, &fakeRevoker{store: st}, slog.New(slog.DiscardHandler)).Mount(r, chi.NewRouter())
	e := &uiEnv{srv: httptest.NewTLSServer(r), store: st}
	t.Cleanup(e.srv.Close)
	browser, code := e.client(t, "ada", "correct horse battery")
	if code != http.StatusOK {
		t.Fatalf("login before the outage: %d", code)
	}
	noRedirect := *browser
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	type answer struct {
		code  int
		body  string
		retry string
		ctype string
	}
	do := func(c *http.Client, method, path, auth, form string) answer {
		t.Helper()
		req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(form))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		if form != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return answer{res.StatusCode, string(b), res.Header.Get("Retry-After"), res.Header.Get("Content-Type")}
	}
	api := func() answer { return do(e.srv.Client(), "GET", "/api/v1/certificates", bearer, "") }
	page := func() answer { return do(&noRedirect, "GET", "/ui/certificates", "", "") }
	login := func() answer {
		return do(e.srv.Client(), "POST", "/ui/login", "", url.Values{"name": {"ada"}, "password": {"correct horse battery"}}.Encode())
	}
	if a, p := api(), page(); a.code != 200 || p.code != 200 {
		t.Fatalf("before the outage: API %d, UI %d; want 200", a.code, p.code)
	}

	sw.set(true)
	for name, a := range map[string]answer{"API": api(), "UI page": page(), "login": login()} {
		if a.code != http.StatusServiceUnavailable || a.retry == "" || strings.TrimSpace(a.body) == "" {
			t.Errorf("%s during the outage: %d Retry-After %q body %q; want 503, Retry-After and a body", name, a.code, a.retry, a.body)
		}
		for _, leak := range []string{sw.ln.Addr().String(), "dial", "connect", "EOF", "pgx", "sql:"} {
			if strings.Contains(a.body, leak) {
				t.Errorf("%s during the outage: body %q reveals %q", name, a.body, leak)
			}
		}
	}
	if a := api(); a.ctype != "application/json" || !json.Valid([]byte(a.body)) || !strings.Contains(a.body, `"error"`) {
		t.Errorf("API during the outage: Content-Type %q body %q; want a JSON error", a.ctype, a.body)
	}

	sw.set(false)
	// The pool drops its dead connections as it meets them; wait for the
	// first good answer (the deadline bounds the wait, it is not the
	// assertion), then require every request to succeed.
	for deadline := time.Now().Add(30 * time.Second); api().code != 200; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the API never answered 200 after the database returned")
		}
	}
	for deadline := time.Now().Add(30 * time.Second); page().code != 200; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the UI never answered 200 after the database returned (was the session lost?)")
		}
	}
	if a, l := api(), login(); a.code != 200 || l.code != 200 {
		t.Fatalf("after the outage: API %d, login %d; want 200 without a restart", a.code, l.code)
	}
}
