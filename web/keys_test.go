package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/web"
)

// fakeReporter serves a fixed key inventory and report and records the
// audit events of report runs in a real store.
type fakeReporter struct {
	store *inventory.Store
	keys  []inventory.Key
	mu    sync.Mutex
	runs  []inventory.Event
}

var _ web.KeyReporter = (*fakeReporter)(nil)

func (f *fakeReporter) Keys(context.Context) ([]inventory.Key, error) { return f.keys, nil }

func (f *fakeReporter) Compliance(ctx context.Context, ev inventory.Event) (*ca.Report, error) {
	now := time.Now()
	rep := ca.NewReport(ca.ComplianceInput{Now: now, HaveDetailed: true, Keys: f.keys,
		Profiles: map[string]ca.Profile{"legacy": {KeyTypes: []string{"RSA-1024"}}}})
	stored, err := f.store.AppendEvent(ctx, ev)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.runs = append(f.runs, stored)
	f.mu.Unlock()
	return rep, nil
}

type keysEnv struct {
	srv    *httptest.Server
	rep    *fakeReporter
	tokens map[string]string
}

func newKeysEnv(t *testing.T, withReporter bool) *keysEnv {
	t.Helper()
	ctx := context.Background()
	s := inventorytest.SQLite(t)
	past, soon, later := time.Now().Add(-time.Hour), time.Now().Add(10*24*time.Hour), time.Now().Add(300*24*time.Hour)
	e := &keysEnv{tokens: map[string]string{}, rep: &fakeReporter{store: s, keys: []inventory.Key{
		{ID: "issuing-1", Class: ca.KeyClassIssuing, Backend: "pkcs11", URI: "pkcs11:token=mica;object=issuing-1", Algorithm: "EC-P256", Status: inventory.KeyActive,
			Protection: json.RawMessage(`{"backend":"pkcs11","on_token":true,"sensitive":true,"never_extractable":true}`), Cryptoperiod: 365 * 24 * time.Hour,
			RotationDue: &soon, Signatures: 42, Metering: inventory.MeteringSigner, Created: past},
		{ID: "root", Class: ca.KeyClassRoot, Backend: "offline", Algorithm: "EC-P384", Status: inventory.KeyActive, RotationDue: &later, Metering: inventory.MeteringSigner},
		{ID: "old-issuing", Class: ca.KeyClassIssuing, Backend: "softkms", URI: "softkms:path=/k", Algorithm: "RSA-1024", Status: inventory.KeyActive, RotationDue: &past},
		{ID: "webhook-1", Class: ca.KeyClassWebhookHMAC, Backend: "config", URI: "file:/etc/mica/hook.key", Algorithm: "HMAC-SHA256-256", Status: inventory.KeyActive, Metering: inventory.MeteringNone},
	}}}
	for _, role := range []string{inventory.RoleAdmin, inventory.RoleOperator, inventory.RoleViewer, inventory.RoleAuditor} {
		tok, _, err := s.CreateAPIToken(ctx, role, "test", inventory.Event{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = tok
		h, err := web.HashPassword("correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(ctx, inventory.User{Name: "u-" + role, Role: role, PasswordHash: h}, inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	w := web.New(s, nil, slog.New(slog.DiscardHandler))
	if withReporter {
		w = w.WithKeyReporter(e.rep)
	}
	r := chi.NewRouter()
	w.Mount(r, chi.NewRouter())
	e.srv = httptest.NewTLSServer(r)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *keysEnv) api(t *testing.T, role, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if tok, ok := e.tokens[role]; ok {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (e *keysEnv) browser(t *testing.T, role string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := *e.srv.Client()
	c.Jar = jar
	res, err := c.PostForm(e.srv.URL+"/ui/login", url.Values{"name": {"u-" + role}, "password": {"correct horse battery"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return &c
}

// TestKeysAPIRoles: every reader role lists keys with status badges and
// usage; only admin and auditor run the compliance report, and each run
// is audited with the caller.
func TestKeysAPIRoles(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t, true)
	for _, tc := range []struct {
		role, path string
		want       int
	}{
		{"", "/api/v1/keys", http.StatusUnauthorized},
		{inventory.RoleViewer, "/api/v1/keys", http.StatusOK},
		{inventory.RoleOperator, "/api/v1/keys", http.StatusOK},
		{inventory.RoleAuditor, "/api/v1/keys", http.StatusOK},
		{inventory.RoleAdmin, "/api/v1/keys", http.StatusOK},
		{inventory.RoleViewer, "/api/v1/compliance", http.StatusForbidden},
		{inventory.RoleOperator, "/api/v1/compliance", http.StatusForbidden},
		{inventory.RoleAuditor, "/api/v1/compliance", http.StatusOK},
		{inventory.RoleAdmin, "/api/v1/compliance", http.StatusOK},
	} {
		if got, body := e.api(t, tc.role, tc.path); got != tc.want {
			t.Errorf("GET %s as %q = %d, want %d (%s)", tc.path, tc.role, got, tc.want, body)
		}
	}
	_, body := e.api(t, inventory.RoleViewer, "/api/v1/keys")
	var keys struct {
		Keys []struct {
			ID, State, Usage, Metering string
			Signatures                 int64
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{"issuing-1": {"due", "counted by the signer"}, "root": {"ok", "counted by the signer"},
		"old-issuing": {"overdue", "counted by the signer"}, "webhook-1": {"ok", "not metered"}}
	for _, k := range keys.Keys {
		if w := want[k.ID]; k.State != w[0] || k.Usage != w[1] {
			t.Errorf("key %s: state %q usage %q, want %q %q", k.ID, k.State, k.Usage, w[0], w[1])
		}
		delete(want, k.ID)
	}
	if len(want) != 0 {
		t.Errorf("keys missing from the API: %v", want)
	}
	if strings.Contains(string(body), "correct horse") {
		t.Error("the key list leaks a secret")
	}

	_, body = e.api(t, inventory.RoleAuditor, "/api/v1/compliance")
	var rep ca.Report
	if err := json.Unmarshal(body, &rep); err != nil || len(rep.Checks) == 0 {
		t.Fatalf("compliance JSON = %s, %v", body, err)
	}
	failed := map[string]bool{}
	for _, c := range rep.Checks {
		failed[c.ID] = c.Result == ca.CheckFail
	}
	if !failed["algorithms"] || !failed["cryptoperiods"] || !failed["backup"] {
		t.Errorf("weak configuration not flagged: %+v", rep.Checks)
	}
	e.rep.mu.Lock()
	runs := e.rep.runs
	e.rep.mu.Unlock()
	if len(runs) != 3 { // auditor, admin in the table, auditor again
		t.Fatalf("report runs audited = %d, want 3", len(runs))
	}
	if ev := runs[2]; ev.Action != "report.compliance" || ev.Protocol != "api" || !strings.HasPrefix(ev.Actor, "token:") || ev.Outcome != "ok" {
		t.Errorf("audit event of an API run = %+v", ev)
	}
}

// TestKeysAndCompliancePages: the Keys page lists every key with its
// badge, protection, cryptoperiod and usage; the Compliance page runs the
// report on a POST (audited as the user) and shows every check; a viewer
// cannot open it; the navigation links follow the role.
func TestKeysAndCompliancePages(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t, true)
	aud := e.browser(t, inventory.RoleAuditor)
	code, body, h := get(t, aud, e.srv.URL+"/ui/keys")
	if code != http.StatusOK || h.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET /ui/keys = %d", code)
	}
	for _, want := range []string{`id="key-issuing-1"`, "badge-due", "badge-overdue", "HSM: on token, sensitive, never extractable",
		"365 days", "not metered", "secret in configuration", `href="/ui/compliance"`, `href="/ui/keys"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/ui/keys lacks %q", want)
		}
	}
	code, body, _ = get(t, aud, e.srv.URL+"/ui/compliance")
	if code != http.StatusOK || !strings.Contains(body, `id="run-compliance"`) || strings.Contains(body, `id="checks"`) {
		t.Fatalf("GET /ui/compliance = %d; want the run form and no report yet", code)
	}
	res, err := aud.PostForm(e.srv.URL+"/ui/compliance", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /ui/compliance = %d", res.StatusCode)
	}
	for _, id := range []string{"algorithms", "cryptoperiods", "hsm", "root-offline", "audit", "backup", "destruction",
		"users-roles", "dormant-accounts", "crl-freshness", "ocsp-freshness", "discovery", "expiry-renewal"} {
		if !strings.Contains(string(b), `id="check-`+id+`"`) {
			t.Errorf("compliance page lacks check %s", id)
		}
	}
	e.rep.mu.Lock()
	runs := e.rep.runs
	e.rep.mu.Unlock()
	if len(runs) != 1 || runs[0].Actor != "user:u-auditor" || runs[0].Protocol != "ui" {
		t.Errorf("UI report runs audited = %+v, want one by user:u-auditor over ui", runs)
	}

	viewer := e.browser(t, inventory.RoleViewer)
	if code, _, _ := get(t, viewer, e.srv.URL+"/ui/compliance"); code != http.StatusForbidden {
		t.Errorf("viewer GET /ui/compliance = %d, want 403", code)
	}
	if code, body, _ := get(t, viewer, e.srv.URL+"/ui/keys"); code != http.StatusOK || strings.Contains(body, `href="/ui/compliance"`) {
		t.Errorf("viewer /ui/keys = %d, compliance link shown %v", code, strings.Contains(body, `href="/ui/compliance"`))
	}
}

// TestKeysWithoutReporter: a server without the key reporter answers 503,
// never a panic or an empty success.
func TestKeysWithoutReporter(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t, false)
	for _, p := range []string{"/api/v1/keys", "/api/v1/compliance"} {
		if code, _ := e.api(t, inventory.RoleAdmin, p); code != http.StatusServiceUnavailable {
			t.Errorf("GET %s without a reporter = %d, want 503", p, code)
		}
	}
	if code, _, _ := get(t, e.browser(t, inventory.RoleAdmin), e.srv.URL+"/ui/keys"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /ui/keys without a reporter = %d, want 503", code)
	}
}
