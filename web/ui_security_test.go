package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/web"
)

// The audit page has a GET filter form; its fields filter and survive
// paging.
func TestUIAuditFilterForm(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		e := newUIOn(t, s, nil)
		for i := range 105 {
			if _, err := s.AppendEvent(ctx, inventory.Event{Actor: "user:bob", Action: "test.poke", Object: "thing:" + strconv.Itoa(i%2), Outcome: "ok"}); err != nil {
				t.Fatal(err)
			}
		}
		aud, _ := e.client(t, "aud", "correct horse battery")
		code, body, _ := get(t, aud, e.srv.URL+"/ui/audit")
		if code != 200 || !strings.Contains(body, `<form method="get" action="/ui/audit"`) || !strings.Contains(body, `name="since"`) ||
			strings.Contains(body, "?action=cert.") {
			t.Errorf("audit page = %d, want a GET filter form", code)
		}
		today := time.Now().UTC().Format("2006-01-02")
		q := url.Values{"action": {"test."}, "actor": {"user:bob"}, "object": {"thing:1"}, "since": {today}}
		code, body, _ = get(t, aud, e.srv.URL+"/ui/audit?"+q.Encode())
		if code != 200 || strings.Count(body, "<td>thing:1</td>") != 52 || strings.Contains(body, "thing:0") || strings.Contains(body, `id="audit-next"`) ||
			!strings.Contains(body, `value="thing:1"`) || !strings.Contains(body, `value="`+today+`"`) {
			t.Errorf("filtered audit page = %d, %d rows", code, strings.Count(body, "<td>thing:1</td>"))
		}
		code, body, _ = get(t, aud, e.srv.URL+"/ui/audit?action=test.&actor=user%3Abob")
		i := strings.Index(body, `id="audit-next"`)
		if code != 200 || strings.Count(body, "<td>test.poke</td>") != 100 || i < 0 {
			t.Fatalf("first page = %d, %d rows", code, strings.Count(body, "<td>test.poke</td>"))
		}
		next := body[strings.LastIndex(body[:i], `href="`)+6:]
		next = strings.ReplaceAll(next[:strings.Index(next, `"`)], "&amp;", "&")
		if !strings.Contains(next, "actor=user%3Abob") || !strings.Contains(next, "before=") {
			t.Errorf("next link %q lost the filter", next)
		}
		if code, body, _ = get(t, aud, e.srv.URL+next); code != 200 || strings.Count(body, "<td>test.poke</td>") != 5 {
			t.Errorf("second page = %d, %d rows", code, strings.Count(body, "<td>test.poke</td>"))
		}
		if code, _, _ = get(t, aud, e.srv.URL+"/ui/audit?since=yesterday"); code != http.StatusBadRequest {
			t.Errorf("bad since = %d, want 400", code)
		}
		if code, _, _ = get(t, aud, e.srv.URL+"/ui/audit?since="+today+"T00:00"); code != 200 {
			t.Errorf("datetime since = %d, want 200", code)
		}
	})
}

// A cross-site POST is refused with the normal 403 page and audited once
// with the session user, source address and path.
func TestUICrossOriginDeniedAudited(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		e := newUIOn(t, s, nil)
		op, _ := e.client(t, "ada", "correct horse battery")
		path := "/ui/certificates/ca/" + e.certs[0].Serial + "/revoke"
		for _, tc := range []struct {
			name   string
			c      *http.Client
			header string
			actor  string
		}{
			{"session", op, "Sec-Fetch-Site", "user:ada"},
			{"anonymous", e.srv.Client(), "Origin", "anonymous"},
		} {
			req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader("reason=keyCompromise"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.header == "Origin" {
				req.Header.Set("Origin", "https://evil.test")
			} else {
				req.Header.Set("Sec-Fetch-Site", "cross-site")
			}
			res, err := tc.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "Cross-origin request refused") ||
				!strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'none'") {
				t.Errorf("%s: cross-site POST = %d", tc.name, res.StatusCode)
			}
			evs, err := s.Events(context.Background(), inventory.EventFilter{Action: "ui.cross_origin", Actor: tc.actor})
			if err != nil || len(evs) != 1 || evs[0].Outcome != "denied" || evs[0].Object != "ui:"+path || evs[0].Source != "127.0.0.1" {
				t.Errorf("%s: audit events %+v, %v; want one denied ui.cross_origin", tc.name, evs, err)
			}
		}
		if c, err := s.Certificate(context.Background(), "ca", e.certs[0].Serial); err != nil || c.State != inventory.StateIssued {
			t.Errorf("certificate after refused POSTs: %v, %v", c, err)
		}
	})
}

// A viewer's revoke is refused in the UI and the API, each with one
// denied audit event, and the certificate stays issued.
func TestViewerRevokeDeniedAudited(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		e := newUIOn(t, s, nil)
		serial := e.certs[0].Serial
		vic, _ := e.client(t, "vic", "correct horse battery")
		res, err := vic.PostForm(e.srv.URL+"/ui/certificates/ca/"+serial+"/revoke", url.Values{"reason": {"keyCompromise"}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("UI viewer revoke = %d, want 403", res.StatusCode)
		}
		evs, err := s.Events(ctx, inventory.EventFilter{Action: "ui.access", Actor: "user:vic"})
		if err != nil || len(evs) != 1 || evs[0].Outcome != "denied" || evs[0].Object != "ui:/ui/certificates/ca/"+serial+"/revoke" {
			t.Errorf("UI denied events %+v, %v", evs, err)
		}
		tok, _, err := s.CreateAPIToken(ctx, inventory.RoleViewer, "viewer-token", inventory.Event{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/certificates/"+serial+"/revoke", strings.NewReader(`{"reason":"keyCompromise"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		if res, err = e.srv.Client().Do(req); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("API viewer revoke = %d, want 403", res.StatusCode)
		}
		evs, err = s.Events(ctx, inventory.EventFilter{Action: "api.access", Object: "api:/api/v1/certificates/" + serial + "/revoke"})
		if err != nil || len(evs) != 1 || evs[0].Outcome != "denied" || !strings.Contains(string(evs[0].Details), `"role":"viewer"`) {
			t.Errorf("API denied events %+v, %v", evs, err)
		}
		if c, err := s.Certificate(ctx, "ca", serial); err != nil || c.State != inventory.StateIssued {
			t.Errorf("certificate after refused revokes: %v, %v", c, err)
		}
	})
}

// Failed logins from one address across accounts throttle that address
// (429, Retry-After), audited; the count lives in the database.
func TestUILoginSourceThrottle(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		e := newUIOn(t, s, func(w *web.Server) { w.WithLoginSourceLimit(3, 15*time.Minute) })
		for _, name := range []string{"vic", "aud", "nobody"} {
			if _, code := e.client(t, name, "wrong password!!"); code != http.StatusUnauthorized {
				t.Fatalf("failed login as %s = %d, want 401", name, code)
			}
		}
		res, err := e.srv.Client().PostForm(e.srv.URL+"/ui/login", url.Values{"name": {"ada"}, "password": {"correct horse battery"}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		ra, _ := strconv.Atoi(res.Header.Get("Retry-After"))
		if res.StatusCode != http.StatusTooManyRequests || ra < 1 || ra > 900 {
			t.Errorf("login from a throttled source = %d, Retry-After %q; want 429, 1..900", res.StatusCode, res.Header.Get("Retry-After"))
		}
		evs, err := s.Events(ctx, inventory.EventFilter{Action: inventory.ActionLoginThrottled})
		if err != nil || len(evs) != 1 || evs[0].Outcome != "denied" || evs[0].Source != "127.0.0.1" || evs[0].Object != "user:ada" {
			t.Errorf("throttle audit events %+v, %v", evs, err)
		}
		if u, err := s.User(ctx, "ada"); err != nil || u.LockedUntil != nil {
			t.Errorf("ada locked by other accounts' failures: %+v, %v", u, err)
		}
		now := time.Now()
		for _, tc := range []struct {
			name   string
			source string
			at     time.Time
			limit  int
			want   bool
		}{
			{"this source", "127.0.0.1", now, 3, true},
			{"higher limit", "127.0.0.1", now, 4, false},
			{"other source", "192.0.2.7", now, 3, false},
			{"window passed", "127.0.0.1", now.Add(16 * time.Minute), 3, false},
		} {
			until, err := s.LoginSourceThrottle(ctx, tc.source, tc.limit, 15*time.Minute, tc.at)
			if err != nil || tc.at.Before(until) != tc.want {
				t.Errorf("%s: throttled until %v (%v), want throttled %t", tc.name, until, err, tc.want)
			}
		}
		if _, err := s.LoginSourceThrottle(ctx, "x", 0, time.Minute, now); err == nil {
			t.Error("zero limit accepted")
		}
	})
}
