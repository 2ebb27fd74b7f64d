package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/web"
)

// fakeRevoker stands in for ca.CA.Revoke: it revokes in the store and
// records the request, so tests can check what web passed on. It maps
// the store's verdict to the ca error kinds the way ca.CA.Revoke does
// (ca/revoke.go) and no further: a conflict is "already revoked", a
// missing row "not found", anything else "unavailable". So a 409 in these
// tests comes from the store refusing a second revocation, not from the
// fake.
type fakeRevoker struct {
	store *inventory.Store
	got   []ca.RevokeRequest
}

var _ web.Revoker = (*fakeRevoker)(nil)

func (f *fakeRevoker) Revoke(ctx context.Context, rr ca.RevokeRequest) (*inventory.Certificate, error) {
	f.got = append(f.got, rr)
	if _, ok := ca.RevocationReasons[rr.Reason]; !ok {
		return nil, ca.Wrap(ca.ErrBadRevocation, nil, "unknown reason "+rr.Reason)
	}
	c, err := f.store.RevokeCertificate(ctx, rr.IssuerID, rr.Serial, rr.Reason, time.Now(), inventory.Event{Actor: rr.Actor, Protocol: rr.Protocol})
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, inventory.ErrConflict):
		return nil, ca.Wrap(ca.ErrAlreadyRevoked, err, "already revoked")
	case errors.Is(err, inventory.ErrNotFound):
		return nil, ca.Wrap(ca.ErrNotFound, err, "no such certificate")
	default:
		return nil, ca.Wrap(ca.ErrUnavailable, err, "recording the revocation failed")
	}
}

type apiEnv struct {
	srv    *httptest.Server
	store  *inventory.Store
	rev    *fakeRevoker
	tokens map[string]string // role → bearer
	certs  []*inventory.Certificate
}

func newAPI(t *testing.T, s *inventory.Store) *apiEnv {
	t.Helper()
	ctx := context.Background()
	inventorytest.Issuer(t, s, "ca")
	env := &apiEnv{store: s, rev: &fakeRevoker{store: s}, tokens: map[string]string{}}
	for _, role := range []string{inventory.RoleAdmin, inventory.RoleOperator, inventory.RoleViewer, inventory.RoleAuditor} {
		tok, _, err := s.CreateAPIToken(ctx, role, "test", inventory.Event{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		env.tokens[role] = tok
	}
	for _, cn := range []string{"a.test", "b.test", "c.test", "d.test", "e.test"} {
		env.certs = append(env.certs, inventorytest.Issue(t, s, inventory.Certificate{IssuerID: "ca", Serial: inventorytest.RandomSerial(t),
			CommonName: cn, SANs: []string{"dns:" + cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(20 * 24 * time.Hour),
			Profile: "server", Protocol: "acme"}))
	}
	r := chi.NewRouter()
	w := web.New(s, env.rev, slog.New(slog.DiscardHandler)).WithJobChecker(func(kind string, spec inventory.JobSpec) error {
		for _, tgt := range spec.Targets {
			if !strings.HasPrefix(tgt, "127.") {
				return &net403{tgt}
			}
		}
		return nil
	})
	w.Mount(r, chi.NewRouter())
	env.srv = httptest.NewServer(r)
	t.Cleanup(env.srv.Close)
	return env
}

type net403 struct{ t string }

func (e *net403) Error() string { return "target " + e.t + " is not on the scan allow-list" }

func (e *apiEnv) do(t *testing.T, role, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if tok, ok := e.tokens[role]; ok {
		req.Header.Set("Authorization", "Bearer "+tok)
	} else if role != "" {
		req.Header.Set("Authorization", "Bearer "+role)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s %s: Content-Type %q, nosniff %q", method, path, ct, res.Header.Get("X-Content-Type-Options"))
	}
	return res.StatusCode, out
}

func TestAPIAuthAndRoles(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newAPI(t, s)
			serial := e.certs[0].Serial
			for _, tc := range []struct {
				role, method, path, body string
				want                     int
			}{
				{"", "GET", "/api/v1/certificates", "", 401},
				{"", "POST", "/api/v1/agent/report", "{}", 401}, // no client certificate
				{"mica_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "GET", "/api/v1/certificates", "", 401},
				{"viewer", "GET", "/api/v1/certificates", "", 200},
				{"auditor", "GET", "/api/v1/certificates", "", 403},
				{"viewer", "GET", "/api/v1/events", "", 403},
				{"auditor", "GET", "/api/v1/events?action=cert.&limit=2", "", 200},
				{"viewer", "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":"keyCompromise"}`, 403},
				{"viewer", "POST", "/api/v1/discovery/jobs", `{"kind":"scan","targets":["127.0.0.1"]}`, 403},
				{"viewer", "GET", "/api/v1/certificates/ffff", "", 404},
				{"viewer", "GET", "/api/v1/certificates?bogus=1", "", 400},
				{"viewer", "GET", "/api/v1/certificates?state=nope", "", 400},
				{"viewer", "GET", "/api/v1/certificates?cursor=%21", "", 400},
				{"viewer", "GET", "/api/v1/nothing", "", 404},
				{"operator", "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":"keyCompromise","x":1}`, 400},
				{"operator", "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":"` + strings.Repeat("a", web.MaxBody) + `"}`, 413},
				{"operator", "POST", "/api/v1/certificates/" + serial + "/revoke", `{"reason":"becauseISaidSo"}`, 400},
				{"operator", "POST", "/api/v1/discovery/jobs", `{"kind":"scan","targets":["10.0.0.1"]}`, 403},
				{"operator", "POST", "/api/v1/discovery/jobs", `{"kind":"nope"}`, 400},
				{"admin", "GET", "/api/v1/events", "", 200},
				{"operator", "GET", "/api/v1/users", "", 403},
				{"admin", "POST", "/api/v1/users", `{"name":"eve","role":"viewer","password":"short"}`, 400},
				{"admin", "POST", "/api/v1/users", `{"name":"eve","role":"viewer","password":"long enough password"}`, 201},
				{"admin", "POST", "/api/v1/users", `{"name":"eve","role":"viewer","password":"long enough password"}`, 409},
				{"admin", "GET", "/api/v1/users", "", 200},
			} {
				if got, body := e.do(t, tc.role, tc.method, tc.path, tc.body); got != tc.want {
					t.Errorf("%s %s as %q = %d %v, want %d", tc.method, tc.path, tc.role, got, body, tc.want)
				}
			}
			evs, err := s.Events(context.Background(), inventory.EventFilter{Action: "api.access"})
			if err != nil || len(evs) < 3 || evs[0].Outcome != "denied" {
				t.Errorf("denied audit events = %d, %v; want at least 3 denied", len(evs), err)
			}
		})
	}
}

func TestAPIRevokeLabelsAndPaging(t *testing.T) {
	t.Parallel()
	s := inventorytest.SQLite(t)
	e := newAPI(t, s)
	target := e.certs[2]
	code, body := e.do(t, "operator", "POST", "/api/v1/certificates/"+target.Serial+"/revoke", `{"reason":"keyCompromise"}`)
	if code != 200 || body["state"] != "revoked" || body["revocation_reason"] != "keyCompromise" {
		t.Fatalf("revoke = %d %v", code, body)
	}
	if len(e.rev.got) != 1 || e.rev.got[0].Protocol != "api" || !strings.HasPrefix(e.rev.got[0].Actor, "token:") {
		t.Errorf("Revoke got %+v, want one api request by a token", e.rev.got)
	}
	if code, _ := e.do(t, "operator", "POST", "/api/v1/certificates/"+target.Serial+"/revoke", `{"reason":"keyCompromise"}`); code != 409 {
		t.Errorf("second revoke = %d, want 409", code)
	}
	code, body = e.do(t, "operator", "PUT", "/api/v1/certificates/"+e.certs[0].Serial+"/labels",
		`{"owner":"alice","team":"web","environment":"prod","tags":["pci"]}`)
	if code != 200 {
		t.Fatalf("labels = %d %v", code, body)
	}
	if code, body = e.do(t, "viewer", "GET", "/api/v1/certificates?tag=pci&owner=alice", ""); code != 200 || len(body["certificates"].([]any)) != 1 {
		t.Errorf("filter by tag = %d %v", code, body)
	}
	if code, body = e.do(t, "viewer", "GET", "/api/v1/certificates?state=revoked&q="+target.CommonName, ""); code != 200 || len(body["certificates"].([]any)) != 1 {
		t.Errorf("filter revoked = %d %v", code, body)
	}
	code, body = e.do(t, "viewer", "GET", "/api/v1/certificates/"+e.certs[1].Serial, "")
	if code != 200 || !strings.HasPrefix(body["pem"].(string), "-----BEGIN CERTIFICATE-----") || body["effective_state"] != "issued" {
		t.Errorf("get = %d %v", code, body)
	}
	seen := map[string]bool{}
	path := "/api/v1/certificates?limit=2&expiring_days=30&sort=expiry"
	for range 10 {
		code, body := e.do(t, "viewer", "GET", path, "")
		if code != 200 {
			t.Fatalf("page = %d %v", code, body)
		}
		for _, c := range body["certificates"].([]any) {
			sr := c.(map[string]any)["serial"].(string)
			if seen[sr] {
				t.Errorf("serial %s on two pages", sr)
			}
			seen[sr] = true
		}
		next, _ := body["next"].(string)
		if next == "" {
			break
		}
		path = "/api/v1/certificates?limit=2&expiring_days=30&sort=expiry&cursor=" + next
	}
	if len(seen) != 4 { // five issued, one revoked
		t.Errorf("paged through %d certificates, want 4", len(seen))
	}
	code, body = e.do(t, "operator", "POST", "/api/v1/discovery/jobs", `{"kind":"scan","targets":["127.0.0.1"],"ports":[443]}`)
	if code != 202 || body["state"] != "queued" {
		t.Fatalf("create job = %d %v", code, body)
	}
	if code, body = e.do(t, "viewer", "GET", "/api/v1/discovery/jobs", ""); code != 200 || len(body["jobs"].([]any)) != 1 {
		t.Errorf("list jobs = %d %v", code, body)
	}
	evs, _ := s.Events(context.Background(), inventory.EventFilter{Action: "cert.label"})
	if len(evs) != 1 || !strings.HasPrefix(evs[0].Actor, "token:") || evs[0].Protocol != "api" {
		t.Errorf("label audit = %+v", evs)
	}
}
