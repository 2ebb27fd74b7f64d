package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/web"
)

// syncBuffer collects the server's log lines, written concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeProfiles stands in for ca.CA's profile reader.
type fakeProfiles map[string]ca.Profile

var _ web.ProfileLister = fakeProfiles(nil)

func (f fakeProfiles) ProfileNames() []string { return []string{"device", "server"} }
func (f fakeProfiles) Profile(n string) (ca.Profile, bool) {
	p, ok := f[n]
	return p, ok
}

// credEnv is an admin API and UI over a real store with the credential
// managers the CLI uses, a fixed clock and a captured log.
type credEnv struct {
	apiEnv
	ui     *httptest.Server
	clock  time.Time
	sealer *acme.EABSealer
	logs   *syncBuffer
}

func newCredEnv(t *testing.T, s *inventory.Store) *credEnv {
	t.Helper()
	ctx := context.Background()
	e := &credEnv{clock: time.Now().UTC().Truncate(time.Second), sealer: newEABSealer(t), logs: &syncBuffer{}}
	e.store, e.tokens = s, map[string]string{}
	for _, role := range []string{inventory.RoleAdmin, inventory.RoleOperator, inventory.RoleViewer, inventory.RoleAuditor} {
		tok, _, err := s.CreateAPIToken(ctx, role, "test", inventory.Event{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = tok
	}
	for name, role := range map[string]string{"ada": "operator", "vic": "viewer", "root": "admin"} {
		h, err := web.HashPassword("correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(ctx, inventory.User{Name: name, Role: role, PasswordHash: h}, inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	est := enroll.Config{Default: "default", Labels: map[string]enroll.Label{
		"default": {Profile: "device", Tokens: true},
		"certs":   {Profile: "device", ClientCerts: true},
	}}
	tokens := &enroll.TokenAdmin{Store: s, Config: est, Now: func() time.Time { return e.clock }}
	eab := &acme.EABAdmin{Store: s, Sealer: e.sealer, Profiles: map[string]acme.Profile{"default": {CAProfiles: []string{"server"}}, "iot": {CAProfiles: []string{"device"}}}}
	profiles := fakeProfiles{
		"device": {Name: "device", DNS: []string{"*.iot.test"}, KeyTypes: []string{"EC-P256"}, MaxLifetime: 720 * time.Hour, DefaultLifetime: 168 * time.Hour, ExtKeyUsage: []string{"clientAuth"}},
		"server": {Name: "server", DNS: []string{"*"}, MaxLifetime: 2160 * time.Hour, DefaultLifetime: 2160 * time.Hour, ExtKeyUsage: []string{"serverAuth"}},
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := chi.NewRouter()
	web.New(s, &fakeRevoker{store: s}, log).WithCredentials(tokens, eab, profiles).Mount(r, chi.NewRouter())
	e.srv = httptest.NewServer(r)
	e.ui = httptest.NewTLSServer(r)
	t.Cleanup(e.srv.Close)
	t.Cleanup(e.ui.Close)
	return e
}

// raw is do without decoding: the exact body, to look for secrets in.
func (e *credEnv) raw(t *testing.T, role, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (e *credEnv) events(t *testing.T, action string) []inventory.Event {
	t.Helper()
	evs, err := e.store.Events(context.Background(), inventory.EventFilter{Action: action, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func digest(pass string) string {
	sum := sha256.Sum256([]byte(pass))
	return hex.EncodeToString(sum[:])
}

func TestCredentialESTTokensAPI(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newCredEnv(t, s)
			ctx := context.Background()
			code, body := e.raw(t, "admin", "POST", "/api/v1/est/tokens", `{"label":"default","names":["dev1.iot.test","10.0.0.5"],"ttl":"2h"}`)
			var created struct {
				ID, Label, Status, Username, Password, Credential string
				Names                                             []string
				ExpiresAt                                         time.Time `json:"expires_at"`
			}
			if err := json.Unmarshal([]byte(body), &created); code != http.StatusCreated || err != nil {
				t.Fatalf("create token = %d %v:\n%s", code, err, body)
			}
			if created.Credential != created.Username+":"+created.Password || created.ID != created.Username || len(created.Password) < 40 {
				t.Fatalf("create token = %+v, want id = username and USER:PASSWORD", created)
			}
			if want := e.clock.Add(2 * time.Hour); !created.ExpiresAt.Equal(want) || created.Status != "unused" {
				t.Errorf("created expires %s status %q, want %s unused", created.ExpiresAt, created.Status, want)
			}
			if want := []string{"dns:dev1.iot.test", "ip:10.0.0.5"}; strings.Join(created.Names, ",") != strings.Join(want, ",") {
				t.Errorf("names = %q, want %q", created.Names, want)
			}
			evs := e.events(t, "est.token.create")
			if len(evs) != 1 || evs[0].Object != "est-token:"+created.ID || evs[0].Protocol != "api" || !strings.HasPrefix(evs[0].Actor, "token:") || evs[0].Outcome != "ok" {
				t.Errorf("create events = %+v, want one est.token.create by the admin token over api", evs)
			}

			// The list shows it, and never the secret or its digest.
			code, list := e.raw(t, "admin", "GET", "/api/v1/est/tokens", "")
			if code != 200 || !strings.Contains(list, created.ID) || !strings.Contains(list, `"status": "unused"`) {
				t.Fatalf("list = %d:\n%s", code, list)
			}
			for _, secret := range []string{created.Password, digest(created.Password)} {
				if strings.Contains(list, secret) {
					t.Fatalf("list carries the secret or its digest:\n%s", list)
				}
			}

			// The EST enrollment path redeems it exactly once.
			tok, err := s.UseESTToken(ctx, created.Username, "default", digest(created.Password), "127.0.0.1", e.clock.Add(time.Minute))
			if err != nil || strings.Join(tok.Names, ",") != "dns:dev1.iot.test,ip:10.0.0.5" {
				t.Fatalf("first use = %v, %v; want accepted with the bound names", tok, err)
			}
			if _, err := s.UseESTToken(ctx, created.Username, "default", digest(created.Password), "127.0.0.1", e.clock.Add(2*time.Minute)); !errors.Is(err, inventory.ErrConflict) {
				t.Fatalf("second use = %v, want ErrConflict", err)
			}
			if code, list := e.raw(t, "admin", "GET", "/api/v1/est/tokens", ""); code != 200 || !strings.Contains(list, `"status": "used"`) {
				t.Errorf("list after use = %d:\n%s", code, list)
			}
			if code, _ := e.do(t, "admin", "DELETE", "/api/v1/est/tokens/"+created.ID, ""); code != http.StatusConflict {
				t.Errorf("revoke used token = %d, want 409", code)
			}

			// An unused token is revoked once, audited, and no longer redeems.
			code, out := e.do(t, "admin", "POST", "/api/v1/est/tokens", `{"label":"default"}`)
			if code != http.StatusCreated {
				t.Fatalf("create default-ttl token = %d %v", code, out)
			}
			id, cred := out["id"].(string), out["credential"].(string)
			if exp, _ := time.Parse(time.RFC3339, out["expires_at"].(string)); !exp.Equal(e.clock.Add(web.DefaultTokenTTL)) {
				t.Errorf("default ttl expiry = %v, want %v", exp, e.clock.Add(web.DefaultTokenTTL))
			}
			if code, _ := e.do(t, "admin", "DELETE", "/api/v1/est/tokens/"+id, ""); code != 200 {
				t.Errorf("revoke = %d, want 200", code)
			}
			if code, _ := e.do(t, "admin", "DELETE", "/api/v1/est/tokens/"+id, ""); code != 404 {
				t.Errorf("revoke again = %d, want 404", code)
			}
			_, pass, _ := strings.Cut(cred, ":")
			if _, err := s.UseESTToken(ctx, id, "default", digest(pass), "127.0.0.1", e.clock.Add(time.Minute)); !errors.Is(err, inventory.ErrNotFound) {
				t.Errorf("use of a revoked token = %v, want ErrNotFound", err)
			}
			if evs := e.events(t, "est.token.revoke"); len(evs) != 1 || evs[0].Object != "est-token:"+id {
				t.Errorf("revoke events = %+v, want one for %s", evs, id)
			}

			for _, tc := range []struct{ name, body string }{
				{"unknown label", `{"label":"nope"}`},
				{"label without tokens", `{"label":"certs"}`},
				{"no label", `{"names":["a.test"]}`},
				{"ttl over the cap", `{"label":"default","ttl":"91d"}`},
				{"ttl over the cap in hours", `{"label":"default","ttl":"2161h"}`},
				{"ttl not a duration", `{"label":"default","ttl":"soon"}`},
				{"negative ttl", `{"label":"default","ttl":"-1h"}`},
				{"empty name", `{"label":"default","names":[""]}`},
				{"blank name", `{"label":"default","names":["a.test","  "]}`},
				{"name with a comma", `{"label":"default","names":["a.test,b.test"]}`},
				{"unknown field", `{"label":"default","role":"admin"}`},
				{"not JSON", `label=default`},
			} {
				if code, out := e.do(t, "admin", "POST", "/api/v1/est/tokens", tc.body); code != http.StatusBadRequest {
					t.Errorf("%s: create = %d %v, want 400", tc.name, code, out)
				}
			}
			if code, _ := e.do(t, "admin", "POST", "/api/v1/est/tokens", `{"label":"`+strings.Repeat("a", web.MaxBody)+`"}`); code != http.StatusRequestEntityTooLarge {
				t.Errorf("oversized body = %d, want 413", code)
			}
			if evs := e.events(t, "est.token.create"); len(evs) != 2 {
				t.Errorf("%d est.token.create events after refused requests, want 2", len(evs))
			}
			for _, secret := range []string{created.Password, pass} {
				if strings.Contains(e.logs.String(), secret) {
					t.Fatalf("a token secret is in the log:\n%s", e.logs.String())
				}
			}
		})
	}
}

func TestCredentialEABKeysAPI(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newCredEnv(t, s)
			ctx := context.Background()
			code, out := e.do(t, "admin", "POST", "/api/v1/acme/eab-keys", `{"profile":"iot"}`)
			kid, key := out["kid"].(string), out["hmac_key"].(string)
			if code != http.StatusCreated || !strings.HasPrefix(kid, "eab-") || out["profile"] != "iot" {
				t.Fatalf("create EAB key = %d %v", code, out)
			}
			// The ACME binding check opens the stored key with the
			// HSM-derived key: it must be the key handed out, for this
			// directory, and another HSM's key must not open it.
			k, err := s.ACMEEABKey(ctx, kid)
			if err != nil {
				t.Fatal(err)
			}
			opened, err := acme.OpenEABKey(e.sealer, k)
			want, _ := base64.RawURLEncoding.DecodeString(key)
			if err != nil || len(want) != 32 || !bytes.Equal(opened, want) || k.Profile != "iot" || k.AccountID != "" {
				t.Fatalf("stored key opens to %x (%v), profile %q, account %q; want the handed-out key, iot, unbound", opened, err, k.Profile, k.AccountID)
			}
			if _, err := acme.OpenEABKey(newEABSealer(t), k); err == nil {
				t.Error("the stored key opens under another HSM's key")
			}
			evs := e.events(t, "acme.eab.create")
			if len(evs) != 1 || evs[0].Object != "acme-eab:"+kid || evs[0].Protocol != "api" || !strings.HasPrefix(evs[0].Actor, "token:") {
				t.Errorf("create events = %+v, want one acme.eab.create over api", evs)
			}
			code, list := e.raw(t, "admin", "GET", "/api/v1/acme/eab-keys", "")
			if code != 200 || !strings.Contains(list, kid) || !strings.Contains(list, `"status": "unbound"`) || strings.Contains(list, key) || strings.Contains(list, "hmac") {
				t.Fatalf("list = %d:\n%s", code, list)
			}

			// Bind it to an account: then it is spent and cannot be revoked.
			acct := &inventory.ACMEAccount{ID: "acct1", Thumbprint: "tp1", JWK: `{"kty":"EC"}`, Status: inventory.ACMEAccountValid, EABKeyID: kid, Profile: "iot"}
			if err := s.CreateACMEAccount(ctx, acct, inventory.Event{Actor: "acme"}); err != nil {
				t.Fatal(err)
			}
			if code, list := e.raw(t, "admin", "GET", "/api/v1/acme/eab-keys", ""); code != 200 || !strings.Contains(list, `"account": "acct1"`) {
				t.Errorf("list after binding = %d:\n%s", code, list)
			}
			if code, _ := e.do(t, "admin", "DELETE", "/api/v1/acme/eab-keys/"+kid, ""); code != http.StatusConflict {
				t.Errorf("revoke bound key = %d, want 409", code)
			}

			code, out = e.do(t, "admin", "POST", "/api/v1/acme/eab-keys", `{"profile":"default"}`)
			if code != http.StatusCreated {
				t.Fatalf("create = %d %v", code, out)
			}
			kid2, key2 := out["kid"].(string), out["hmac_key"].(string)
			if code, _ := e.do(t, "admin", "DELETE", "/api/v1/acme/eab-keys/"+kid2, ""); code != 200 {
				t.Errorf("revoke = %d, want 200", code)
			}
			if _, err := s.ACMEEABKey(ctx, kid2); !errors.Is(err, inventory.ErrNotFound) {
				t.Errorf("revoked key lookup = %v, want ErrNotFound (the binding check refuses it)", err)
			}
			if code, _ := e.do(t, "admin", "DELETE", "/api/v1/acme/eab-keys/"+kid2, ""); code != 404 {
				t.Errorf("revoke again = %d, want 404", code)
			}
			if evs := e.events(t, "acme.eab.revoke"); len(evs) != 1 || evs[0].Object != "acme-eab:"+kid2 {
				t.Errorf("revoke events = %+v", evs)
			}
			for _, body := range []string{`{"profile":"nope"}`, `{}`, `{"profile":"iot","x":1}`, `[]`} {
				if code, out := e.do(t, "admin", "POST", "/api/v1/acme/eab-keys", body); code != http.StatusBadRequest {
					t.Errorf("create %s = %d %v, want 400", body, code, out)
				}
			}
			if code, _ := e.do(t, "admin", "POST", "/api/v1/acme/eab-keys", `{"profile":"`+strings.Repeat("a", web.MaxBody)+`"}`); code != http.StatusRequestEntityTooLarge {
				t.Errorf("oversized body = %d, want 413", code)
			}
			for _, secret := range []string{key, key2} {
				if strings.Contains(e.logs.String(), secret) {
					t.Fatalf("an HMAC key is in the log:\n%s", e.logs.String())
				}
			}
		})
	}
}

func TestCredentialAdminOnly(t *testing.T) {
	t.Parallel()
	e := newCredEnv(t, inventorytest.SQLite(t))
	denied := 0
	for _, role := range []string{"viewer", "operator", "auditor"} {
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/api/v1/est/tokens", ""},
			{"POST", "/api/v1/est/tokens", `{"label":"default"}`},
			{"DELETE", "/api/v1/est/tokens/est-00", ""},
			{"GET", "/api/v1/acme/eab-keys", ""},
			{"POST", "/api/v1/acme/eab-keys", `{"profile":"default"}`},
			{"DELETE", "/api/v1/acme/eab-keys/eab-00", ""},
		} {
			if code, _ := e.do(t, role, tc.method, tc.path, tc.body); code != http.StatusForbidden {
				t.Errorf("%s %s %s = %d, want 403", role, tc.method, tc.path, code)
			}
			denied++
		}
	}
	evs := e.events(t, "api.access")
	if len(evs) != denied {
		t.Fatalf("%d api.access events, want %d", len(evs), denied)
	}
	for _, ev := range evs {
		if ev.Outcome != "denied" || !strings.HasPrefix(ev.Object, "api:/api/v1/") {
			t.Errorf("denied event = %+v", ev)
		}
	}
	if n := len(e.events(t, "est.token.create")) + len(e.events(t, "acme.eab.create")); n != 0 {
		t.Errorf("%d credentials created by non-admins", n)
	}
}

func TestCredentialProfilesAPI(t *testing.T) {
	t.Parallel()
	e := newCredEnv(t, inventorytest.SQLite(t))
	for _, tc := range []struct {
		role string
		want int
	}{{"admin", 200}, {"operator", 200}, {"viewer", 403}, {"auditor", 403}} {
		code, body := e.raw(t, tc.role, "GET", "/api/v1/profiles", "")
		if code != tc.want {
			t.Errorf("%s GET /profiles = %d, want %d", tc.role, code, tc.want)
			continue
		}
		if code != 200 {
			continue
		}
		var out struct {
			Profiles []struct {
				Name        string   `json:"name"`
				DNS         []string `json:"dns"`
				KeyTypes    []string `json:"key_types"`
				ExtKeyUsage []string `json:"ext_key_usage"`
				MaxText     string   `json:"max_lifetime_text"`
			} `json:"profiles"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil || len(out.Profiles) != 2 {
			t.Fatalf("profiles = %v:\n%s", err, body)
		}
		p := out.Profiles[0]
		if p.Name != "device" || p.DNS[0] != "*.iot.test" || p.KeyTypes[0] != "EC-P256" || p.ExtKeyUsage[0] != "clientAuth" || p.MaxText != "30d" {
			t.Errorf("first profile = %+v", p)
		}
	}
}

func TestCredentialUI(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newCredEnv(t, s)
			uiEnv := &uiEnv{srv: e.ui, store: s}
			root, _ := uiEnv.client(t, "root", "correct horse battery")
			op, _ := uiEnv.client(t, "ada", "correct horse battery")
			page := e.ui.URL + "/ui/admin/credentials"

			code, body, _ := get(t, root, page)
			if code != 200 || !strings.Contains(body, `href="/ui/admin/credentials"`) || !strings.Contains(body, `id="create-token"`) ||
				!strings.Contains(body, `id="create-eab"`) || !strings.Contains(body, `id="profile-device"`) || !strings.Contains(body, "*.iot.test") {
				t.Fatalf("admin page = %d:\n%s", code, body)
			}
			if _, body, _ := get(t, op, e.ui.URL+"/ui/"); strings.Contains(body, "/ui/admin/credentials") {
				t.Error("the operator's nav links to the credentials page")
			}
			if code, _, _ := get(t, op, page); code != http.StatusForbidden {
				t.Errorf("operator page = %d, want 403", code)
			}
			if code, _ := post(t, op, page+"/est-tokens", url.Values{"label": {"default"}}); code != http.StatusForbidden {
				t.Errorf("operator creates a token = %d, want 403", code)
			}
			if evs := e.events(t, "ui.access"); len(evs) != 2 || evs[0].Outcome != "denied" {
				t.Errorf("ui.access events = %+v, want 2 denied", evs)
			}

			code, body = post(t, root, page+"/est-tokens", url.Values{"label": {"default"}, "names": {"dev2.iot.test, dev3.iot.test"}, "ttl": {"7d"}})
			m := regexp.MustCompile(`id="new-token-credential">(est-[0-9a-f]+):([A-Za-z0-9_-]+)<`).FindStringSubmatch(body)
			if code != http.StatusCreated || m == nil || !strings.Contains(body, "shown only once") {
				t.Fatalf("UI create token = %d:\n%s", code, body)
			}
			id, pass := m[1], m[2]
			tok, err := s.UseESTToken(context.Background(), id, "default", digest(pass), "127.0.0.1", e.clock.Add(6*24*time.Hour))
			if err != nil || len(tok.Names) != 2 {
				t.Fatalf("UI-made token use = %v, %v", tok, err)
			}
			if _, body, _ := get(t, root, page); !strings.Contains(body, id) || strings.Contains(body, pass) {
				t.Errorf("page after creation: lists %s = %v, shows the secret = %v", id, strings.Contains(body, id), strings.Contains(body, pass))
			}
			if code, body := post(t, root, page+"/est-tokens", url.Values{"label": {"default"}, "ttl": {"1y"}}); code != http.StatusBadRequest || !strings.Contains(body, "ttl") {
				t.Errorf("UI bad ttl = %d", code)
			}

			// A second token, revoked with the button's POST.
			_, body = post(t, root, page+"/est-tokens", url.Values{"label": {"default"}})
			m = regexp.MustCompile(`id="new-token-credential">(est-[0-9a-f]+):`).FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("second token not shown:\n%s", body)
			}
			req, _ := http.NewRequest("POST", page+"/est-tokens/"+m[1]+"/revoke", nil)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			if res, err := root.Do(req); err != nil || res.StatusCode != http.StatusForbidden {
				t.Errorf("cross-site revoke = %v %v, want 403", res, err)
			} else {
				res.Body.Close()
			}
			if code, body := post(t, root, page+"/est-tokens/"+m[1]+"/revoke", nil); code != 200 || !strings.Contains(body, "EST enrollment token revoked.") || strings.Contains(body, `id="token-`+m[1]+`"`) {
				t.Errorf("revoke = %d:\n%s", code, body)
			}
			if code, _ := post(t, root, page+"/est-tokens/"+id+"/revoke", nil); code != http.StatusConflict {
				t.Errorf("revoke used token = %d, want 409", code)
			}

			code, body = post(t, root, page+"/eab-keys", url.Values{"profile": {"iot"}})
			k := regexp.MustCompile(`id="new-eab-kid">(eab-[^<]+)<.*id="new-eab-hmac">([A-Za-z0-9_-]+)<`).FindStringSubmatch(body)
			if code != http.StatusCreated || k == nil {
				t.Fatalf("UI create EAB key = %d:\n%s", code, body)
			}
			if _, body, _ := get(t, root, page); !strings.Contains(body, k[1]) || strings.Contains(body, k[2]) {
				t.Error("page after EAB creation does not list the key, or shows its HMAC key")
			}
			if code, body := post(t, root, page+"/eab-keys/"+k[1]+"/revoke", nil); code != 200 || !strings.Contains(body, "EAB key revoked.") {
				t.Errorf("revoke EAB key = %d", code)
			}
			if code, _ := post(t, root, page+"/eab-keys", url.Values{"profile": {"nope"}}); code != http.StatusBadRequest {
				t.Errorf("UI unknown profile = %d, want 400", code)
			}
			if n := len(e.events(t, "est.token.create")); n != 2 {
				t.Errorf("%d est.token.create events, want 2", n)
			}
			for _, secret := range []string{pass, k[2]} {
				if strings.Contains(e.logs.String(), secret) {
					t.Fatalf("a secret is in the log:\n%s", e.logs.String())
				}
			}
		})
	}
}

// newEABSealer derives an EAB sealer from a fresh software key backend.
func newEABSealer(t *testing.T) *acme.EABSealer {
	t.Helper()
	ctx := context.Background()
	uri, pass := hsmtest.SoftKMS(t)
	keys, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: pass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	sealer, err := acme.NewEABSealer(ctx, keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sealer
}
