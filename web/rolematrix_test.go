package web_test

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/web"
)

// access says who may call a route.
type access int

const (
	byRole     access = iota // the listed roles and admin; everyone else 403 (401 / login redirect without credentials)
	public                   // login, logout, static files: reachable by anyone, never a role denial (403)
	clientCert               // agent routes: a MICA client certificate, never a bearer token or session
)

// matrixRule is one row of the role matrix: who may call METHOD PATTERN.
type matrixRule struct {
	access access
	allow  []string // byRole only; admin is always allowed and is not listed
}

const (
	viewer   = inventory.RoleViewer
	operator = inventory.RoleOperator
	auditor  = inventory.RoleAuditor
)

func roles(r ...string) matrixRule { return matrixRule{access: byRole, allow: r} }

// roleMatrix is the expected access of every route the web package
// mounts, keyed "METHOD pattern" exactly as chi.Walk reports it. A route
// added without a row here fails TestRoleMatrix: deciding who may call a
// new route is part of adding it.
var roleMatrix = map[string]matrixRule{
	// Admin API (bearer token).
	"GET /api/v1/certificates":                  roles(viewer, operator),
	"GET /api/v1/certificates/{serial}":         roles(viewer, operator),
	"PATCH /api/v1/certificates/{serial}":       roles(operator),
	"PUT /api/v1/certificates/{serial}/labels":  roles(operator),
	"POST /api/v1/certificates/{serial}/revoke": roles(operator),
	"POST /api/v1/certificates/bulk":            roles(operator),
	"GET /api/v1/discovered":                    roles(viewer, operator),
	"GET /api/v1/discovery/jobs":                roles(viewer, operator),
	"POST /api/v1/discovery/jobs":               roles(operator),
	"GET /api/v1/discovery/jobs/{id}":           roles(viewer, operator),
	"GET /api/v1/discovery/schedules":           roles(viewer, operator),
	"POST /api/v1/discovery/schedules":          roles(operator),
	"GET /api/v1/discovery/schedules/{id}":      roles(viewer, operator),
	"PATCH /api/v1/discovery/schedules/{id}":    roles(operator),
	"DELETE /api/v1/discovery/schedules/{id}":   roles(operator),
	"GET /api/v1/events":                        roles(auditor),
	"GET /api/v1/keys":                          roles(viewer, operator, auditor),
	"GET /api/v1/compliance":                    roles(auditor),
	"GET /api/v1/profiles":                      roles(operator),
	"GET /api/v1/users":                         roles(),
	"POST /api/v1/users":                        roles(),
	"GET /api/v1/users/{name}":                  roles(),
	"PATCH /api/v1/users/{name}":                roles(),
	"DELETE /api/v1/users/{name}":               roles(),
	"POST /api/v1/users/{name}/password":        roles(),
	"GET /api/v1/est/tokens":                    roles(),
	"POST /api/v1/est/tokens":                   roles(),
	"DELETE /api/v1/est/tokens/{id}":            roles(),
	"GET /api/v1/acme/eab-keys":                 roles(),
	"POST /api/v1/acme/eab-keys":                roles(),
	"DELETE /api/v1/acme/eab-keys/{kid}":        roles(),
	"POST /api/v1/agent/report":                 {access: clientCert},

	// Browser UI (session cookie).
	"GET /ui":                                {access: public},
	"GET /ui/login":                          {access: public},
	"POST /ui/login":                         {access: public},
	"POST /ui/logout":                        {access: public},
	"GET /ui/static/*":                       {access: public},
	"HEAD /ui/static/*":                      {access: public},
	"GET /ui/":                               roles(viewer, operator, auditor),
	"GET /ui/certificates":                   roles(viewer, operator),
	"GET /ui/certificates.csv":               roles(viewer, operator),
	"GET /ui/certificates/{issuer}/{serial}": roles(viewer, operator),
	"POST /ui/certificates/{issuer}/{serial}/revoke":    roles(operator),
	"POST /ui/certificates/{issuer}/{serial}/labels":    roles(operator),
	"POST /ui/certificates/bulk":                        roles(operator),
	"GET /ui/issuers":                                   roles(viewer, operator),
	"GET /ui/discovery":                                 roles(viewer, operator),
	"POST /ui/discovery":                                roles(operator),
	"POST /ui/discovery/schedules":                      roles(operator),
	"POST /ui/discovery/schedules/{id}/pause":           roles(operator),
	"POST /ui/discovery/schedules/{id}/resume":          roles(operator),
	"POST /ui/discovery/schedules/{id}/delete":          roles(operator),
	"GET /ui/audit":                                     roles(auditor),
	"GET /ui/keys":                                      roles(viewer, operator, auditor),
	"GET /ui/compliance":                                roles(auditor),
	"POST /ui/compliance":                               roles(auditor),
	"GET /ui/users":                                     roles(),
	"POST /ui/users":                                    roles(),
	"POST /ui/users/{name}/role":                        roles(),
	"POST /ui/users/{name}/password":                    roles(),
	"POST /ui/users/{name}/disable":                     roles(),
	"POST /ui/users/{name}/enable":                      roles(),
	"POST /ui/users/{name}/delete":                      roles(),
	"GET /ui/admin/credentials":                         roles(),
	"POST /ui/admin/credentials/est-tokens":             roles(),
	"POST /ui/admin/credentials/est-tokens/{id}/revoke": roles(),
	"POST /ui/admin/credentials/eab-keys":               roles(),
	"POST /ui/admin/credentials/eab-keys/{kid}/revoke":  roles(),
}

// The principals every route is called as. Admin comes last so that the
// routes it may call (delete a user, revoke a certificate) change state
// only after everyone else has been checked against it.
const (
	asNone    = "no credential"
	asRevoked = "revoked API token"
	asExpired = "expired session"
)

var matrixPrincipals = []string{asNone, asRevoked, asExpired, viewer, operator, auditor, inventory.RoleAdmin}

// matrixEnv is the real web router over a real store, with one user and
// one API token per role.
type matrixEnv struct {
	srv     *httptest.Server
	store   *inventory.Store
	tokens  map[string]string // role → bearer
	users   map[string]string // role → user name
	revoked string            // bearer of a revoked token
	expired string            // cookie of an expired session
	params  map[string]string // URL parameter → value naming a real object
}

func newMatrixEnv(t *testing.T) *matrixEnv {
	t.Helper()
	ctx := context.Background()
	dsn := inventorytest.SQLiteDSN(t)
	s, err := inventory.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	inventorytest.Issuer(t, s, "ca")
	e := &matrixEnv{store: s, tokens: map[string]string{}, users: map[string]string{}}
	ev := inventory.Event{Actor: "test"}
	hash, err := web.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{viewer, operator, auditor, inventory.RoleAdmin} {
		tok, _, err := s.CreateAPIToken(ctx, role, "matrix", ev)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = tok
		e.users[role] = "u-" + role
		if err := s.CreateUser(ctx, inventory.User{Name: e.users[role], Role: role, PasswordHash: hash}, ev); err != nil {
			t.Fatal(err)
		}
	}
	// The user the user-administration routes act on, so that no
	// principal disables or deletes itself.
	if err := s.CreateUser(ctx, inventory.User{Name: "target", Role: viewer, PasswordHash: hash}, ev); err != nil {
		t.Fatal(err)
	}

	// A revoked token: a real token whose row is marked revoked, which is
	// what revocation leaves behind.
	revoked, tok, err := s.CreateAPIToken(ctx, inventory.RoleAdmin, "revoked", ev)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE id = ?`,
		time.Now().UTC().Format("2006-01-02 15:04:05.000000"), tok.ID); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := s.AuthenticateAPIToken(ctx, revoked); err == nil {
		t.Fatal("the revoked token still authenticates: the matrix would test nothing")
	}
	e.revoked = revoked

	// An expired admin session.
	if e.expired, err = s.CreateSession(ctx, e.users[inventory.RoleAdmin], -time.Minute); err != nil {
		t.Fatal(err)
	}

	cert := inventorytest.Issue(t, s, inventory.Certificate{IssuerID: "ca", Serial: inventorytest.RandomSerial(t),
		CommonName: "matrix.test", SANs: []string{"dns:matrix.test"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(20 * 24 * time.Hour), Profile: "server", Protocol: "acme"})
	job, err := s.CreateDiscoveryJob(ctx, "scan", map[string]any{"targets": []string{"127.0.0.1"}}, ev)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := s.CreateSchedule(ctx, inventory.Schedule{Kind: "scan", Spec: inventory.JobSpec{Targets: []string{"127.0.0.1"}, Ports: []int{8443}},
		Interval: time.Hour, Enabled: true}, ev)
	if err != nil {
		t.Fatal(err)
	}
	e.params = map[string]string{"{serial}": cert.Serial, "{issuer}": "ca", "{name}": "target", "{kid}": "nokid", "*": "style.css"}
	e.params["{id}/jobs"] = strconv.FormatInt(job.ID, 10)
	e.params["{id}/schedules"] = strconv.FormatInt(sc.ID, 10)

	e.srv = httptest.NewServer(matrixRouter(s))
	t.Cleanup(e.srv.Close)
	return e
}

// matrixRouter mounts the web server on a chi router the way the server
// package mounts every Mounter.
func matrixRouter(s *inventory.Store) chi.Router {
	r := chi.NewRouter()
	web.New(s, &fakeRevoker{store: s}, slog.New(slog.DiscardHandler)).WithJobChecker(loopbackOnly).Mount(r, chi.NewRouter())
	return r
}

// path fills a route pattern's parameters with real objects.
func (e *matrixEnv) path(pattern string) string {
	p := pattern
	if strings.Contains(p, "{id}") {
		v := "1"
		switch {
		case strings.Contains(p, "/jobs/"):
			v = e.params["{id}/jobs"]
		case strings.Contains(p, "/schedules/"):
			v = e.params["{id}/schedules"]
		}
		p = strings.ReplaceAll(p, "{id}", v)
	}
	for k, v := range e.params {
		p = strings.ReplaceAll(p, k, v)
	}
	return p
}

// call sends method path as principal: a bearer token on the API, a
// fresh session cookie on the UI (a fresh one per call, since
// /ui/logout ends the session it is sent with).
func (e *matrixEnv) call(t *testing.T, principal, method, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ui := strings.HasPrefix(path, "/ui")
	switch principal {
	case asNone:
	case asRevoked:
		req.Header.Set("Authorization", "Bearer "+e.revoked)
	case asExpired:
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: e.expired})
	default:
		if ui {
			sess, err := e.store.CreateSession(context.Background(), e.users[principal], time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: sess})
		} else {
			req.Header.Set("Authorization", "Bearer "+e.tokens[principal])
		}
	}
	if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		if ui {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	c := *e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

// deniedEvents counts the denied access events recorded for path.
func (e *matrixEnv) deniedEvents(t *testing.T, path string) int {
	t.Helper()
	action, object := "api.access", "api:"+path
	if strings.HasPrefix(path, "/ui") {
		action, object = "ui.access", "ui:"+path
	}
	evs, err := e.store.Events(context.Background(), inventory.EventFilter{Action: action, Object: object, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Outcome == "denied" && ev.Object == object {
			n++
		}
	}
	return n
}

// TestRoleMatrix walks the real router and calls every route as every
// role, without credentials, with a revoked API token and with an expired
// session, against roleMatrix.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	e := newMatrixEnv(t)
	type route struct{ method, pattern string }
	var routes []route
	err := chi.Walk(matrixRouter(e.store), func(method, pattern string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, route{method, pattern})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) < len(roleMatrix) {
		t.Fatalf("chi.Walk found %d routes, the matrix has %d rows", len(routes), len(roleMatrix))
	}
	seen := map[string]bool{}
	for _, rt := range routes {
		key := rt.method + " " + rt.pattern
		rule, ok := roleMatrix[key]
		if !ok {
			// The file server under /ui/static/ answers every method;
			// GET and HEAD are its rows, the rest are not routes anyone
			// added.
			if strings.HasPrefix(rt.pattern, "/ui/static/") {
				continue
			}
			t.Errorf("route %s has no row in roleMatrix: add one saying who may call it", key)
			continue
		}
		seen[key] = true
		path := e.path(rt.pattern)
		for _, who := range matrixPrincipals {
			e.check(t, rule, who, rt.method, path)
		}
	}
	for key := range roleMatrix {
		if !seen[key] {
			t.Errorf("roleMatrix row %q names no mounted route", key)
		}
	}
}

func (e *matrixEnv) check(t *testing.T, rule matrixRule, who, method, path string) {
	t.Helper()
	ui := strings.HasPrefix(path, "/ui")
	before := e.deniedEvents(t, path)
	res := e.call(t, who, method, path)
	got := res.StatusCode
	toLogin := got == http.StatusSeeOther && res.Header.Get("Location") == "/ui/login"
	switch {
	case rule.access == public:
		// A failed login is 401 and logout redirects to the login
		// form, whoever asks; what a public route never does is refuse
		// a role.
		if got == http.StatusForbidden {
			t.Errorf("%s %s as %s = 403; a public route refuses no role", method, path, who)
		}
	case rule.access == clientCert:
		if got != http.StatusUnauthorized {
			t.Errorf("%s %s as %s = %d, want 401: only a client certificate admits", method, path, who, got)
		}
	case who == asNone || who == asRevoked || who == asExpired:
		if ui && !toLogin {
			t.Errorf("%s %s as %s = %d (Location %q), want 303 to /ui/login", method, path, who, got, res.Header.Get("Location"))
		}
		if !ui && got != http.StatusUnauthorized {
			t.Errorf("%s %s as %s = %d, want 401", method, path, who, got)
		}
	case who == inventory.RoleAdmin || slices.Contains(rule.allow, who):
		if got == http.StatusUnauthorized || got == http.StatusForbidden || toLogin {
			t.Errorf("%s %s as %s = %d, want it allowed", method, path, who, got)
		}
	default:
		if got != http.StatusForbidden {
			t.Errorf("%s %s as %s = %d, want 403", method, path, who, got)
		}
		if after := e.deniedEvents(t, path); after != before+1 {
			t.Errorf("%s %s as %s: %d denied audit events, want %d", method, path, who, after, before+1)
		}
	}
}
