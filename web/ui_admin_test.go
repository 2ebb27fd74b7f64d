package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mica-pki/mica/inventory"
)

// loopbackOnly stands in for the scan allow-list (discover.Runner.Check).
func loopbackOnly(_ string, spec inventory.JobSpec) error {
	for _, tgt := range spec.Targets {
		if !strings.HasPrefix(tgt, "127.") {
			return &net403{tgt}
		}
	}
	return nil
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	res, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestUISortHeaders(t *testing.T) {
	t.Parallel()
	e := newUI(t)
	op, _ := e.client(t, "ada", "correct horse battery")
	for _, tc := range []struct {
		query, col, aria, next string
	}{
		{"", "Common name", "", "order=asc&q=test&sort=cn"},
		{"&sort=expiry", "Expires", "ascending", "order=desc&q=test&sort=expiry"},
		{"&sort=expiry&order=desc", "Expires", "descending", "order=asc&q=test&sort=expiry"},
		{"&sort=cn&order=asc", "Common name", "ascending", "order=desc&q=test&sort=cn"},
	} {
		code, body, _ := get(t, op, e.srv.URL+"/ui/certificates?q=test"+tc.query)
		if code != 200 {
			t.Fatalf("sorted table %s = %d", tc.query, code)
		}
		th := regexp.MustCompile(`<th scope="col"( aria-sort="(\w+)")?><a href="([^"]+)">` + tc.col).FindStringSubmatch(body)
		if th == nil || th[2] != tc.aria || !strings.HasSuffix(strings.ReplaceAll(th[3], "&amp;", "&"), "?"+tc.next) {
			t.Errorf("%s header for %q = %q, want aria-sort %q linking to ?%s", tc.col, tc.query, th, tc.aria, tc.next)
		}
		if tc.aria != "" && strings.Count(body, "aria-sort=") != 1 {
			t.Errorf("%q: %d columns claim aria-sort, want 1", tc.query, strings.Count(body, "aria-sort="))
		}
	}
	_, body, _ := get(t, op, e.srv.URL+"/ui/certificates?sort=cn&order=desc")
	if i, j := strings.Index(body, "beta.test"), strings.Index(body, "alpha.test"); i < 0 || j < 0 || i > j {
		t.Errorf("sort=cn&order=desc does not put beta.test before alpha.test")
	}
	if !strings.Contains(body, `href="/ui/certificates.csv?order=desc&amp;sort=cn"`) {
		t.Errorf("CSV link does not keep the sort")
	}
	_, csv, _ := get(t, op, e.srv.URL+"/ui/certificates.csv?sort=cn&order=asc")
	if i, j := strings.Index(csv, "alpha.test"), strings.Index(csv, "beta.test"); i < 0 || i > j {
		t.Errorf("CSV sorted by cn asc:\n%s", csv)
	}
	if code, _, _ := get(t, op, e.srv.URL+"/ui/certificates?sort=bogus"); code != http.StatusBadRequest {
		t.Errorf("sort=bogus = %d, want 400", code)
	}
}

func TestUILabelsAndBulk(t *testing.T) {
	t.Parallel()
	e := newUI(t)
	ctx := context.Background()
	op, _ := e.client(t, "ada", "correct horse battery")
	vic, _ := e.client(t, "vic", "correct horse battery")
	c0 := e.certs[0]
	page := e.srv.URL + "/ui/certificates/ca/" + c0.Serial
	labels := url.Values{"owner": {"alice"}, "team": {"web"}, "environment": {"prod"}, "tags": {"pci, edge"}}
	if code, _ := post(t, vic, page+"/labels", labels); code != http.StatusForbidden {
		t.Errorf("viewer labels = %d, want 403", code)
	}
	code, body := post(t, op, page+"/labels", labels)
	if code != 200 || !strings.Contains(body, "Labels saved.") || !strings.Contains(body, "alice / web / prod") || !strings.Contains(body, `<span class="tag">edge</span>`) {
		t.Errorf("labels = %d:\n%s", code, body)
	}
	if code, body := post(t, op, page+"/labels", url.Values{"owner": {"x"}, "tags": {"Not A Tag!"}}); code != http.StatusBadRequest {
		t.Errorf("bad tag = %d, want 400:\n%s", code, body)
	}
	evs, _ := e.store.Events(ctx, inventory.EventFilter{Action: "cert.label"})
	if len(evs) != 1 || evs[0].Actor != "user:ada" || evs[0].Protocol != "ui" || !strings.Contains(string(evs[0].Details), `"old":{"owner":""`) {
		t.Errorf("label events = %+v", evs)
	}

	pick := url.Values{"cert": {"ca/" + e.certs[1].Serial, "ca/" + e.certs[2].Serial}, "action": {"revoke"}, "reason": {"superseded"}}
	if code, _ := post(t, vic, e.srv.URL+"/ui/certificates/bulk", pick); code != http.StatusForbidden {
		t.Errorf("viewer bulk = %d, want 403", code)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/ui/certificates/bulk", strings.NewReader(pick.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if res, err := op.Do(req); err != nil || res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site bulk = %v %v, want 403", res.StatusCode, err)
	} else {
		res.Body.Close()
	}
	for _, bad := range []url.Values{
		{"cert": {"ca/" + e.certs[1].Serial}, "action": {"revoke"}, "reason": {"because"}},
		{"cert": {"ca/" + e.certs[1].Serial}, "action": {"explode"}},
		{"cert": {"ca/" + e.certs[1].Serial}, "action": {"label"}},
		{"action": {"revoke"}, "reason": {"superseded"}},
		{"cert": {"no-slash"}, "action": {"revoke"}, "reason": {"superseded"}},
	} {
		if code, _ := post(t, op, e.srv.URL+"/ui/certificates/bulk", bad); code != http.StatusBadRequest {
			t.Errorf("bulk %v = %d, want 400", bad, code)
		}
	}
	if got, _ := e.store.Events(ctx, inventory.EventFilter{Action: "cert.revoke"}); len(got) != 0 {
		t.Fatalf("refused bulk requests revoked %d certificates", len(got))
	}
	pick["cert"] = append(pick["cert"], "ca/ffff01")
	code, body = post(t, op, e.srv.URL+"/ui/certificates/bulk", pick)
	if code != 200 || !strings.Contains(body, "Revoked 2 of 3 certificates; 1 failed.") {
		t.Errorf("bulk revoke = %d:\n%s", code, body)
	}
	for _, c := range e.certs[1:] {
		got, _ := e.store.Certificate(ctx, "ca", c.Serial)
		if got.State != inventory.StateRevoked || got.RevocationReason != "superseded" {
			t.Errorf("%s after bulk revoke: %s %s", c.CommonName, got.State, got.RevocationReason)
		}
	}
	code, body = post(t, op, e.srv.URL+"/ui/certificates/bulk", url.Values{"cert": {"ca/" + e.certs[1].Serial, "ca/" + c0.Serial},
		"action": {"label"}, "team": {"platform"}, "add_tag": {"q3-review"}})
	if code != 200 || !strings.Contains(body, "Labelled 2 of 2") {
		t.Errorf("bulk label = %d:\n%s", code, body)
	}
	d, _ := e.store.CertificateDetail(ctx, "ca", c0.Serial)
	if d.Labels.Owner != "alice" || d.Labels.Team != "platform" || strings.Join(d.Labels.Tags, ",") != "edge,pci,q3-review" {
		t.Errorf("labels after bulk label = %+v", d.Labels)
	}
	bulk, _ := e.store.Events(ctx, inventory.EventFilter{Action: "cert.bulk"})
	if len(bulk) != 2 || bulk[1].Outcome != "error" || !strings.Contains(string(bulk[1].Details), `"count":3`) || bulk[0].Actor != "user:ada" {
		t.Errorf("bulk events = %+v", bulk)
	}
	if denied, _ := e.store.Events(ctx, inventory.EventFilter{Action: "ui.access"}); len(denied) != 2 {
		t.Errorf("viewer POSTs audited %d times, want 2", len(denied))
	}
}

func TestUIUsersAndSchedules(t *testing.T) {
	t.Parallel()
	e := newUI(t)
	ctx := context.Background()
	root, _ := e.client(t, "root", "correct horse battery")
	op, _ := e.client(t, "ada", "correct horse battery")
	if code, _ := post(t, op, e.srv.URL+"/ui/users", url.Values{"name": {"eve"}, "role": {"viewer"}}); code != http.StatusForbidden {
		t.Errorf("operator adds user = %d, want 403", code)
	}
	code, body := post(t, root, e.srv.URL+"/ui/users", url.Values{"name": {"eve"}, "role": {"viewer"}})
	pw := regexp.MustCompile(`id="new-password">([A-Za-z0-9_-]+)<`).FindStringSubmatch(body)
	if code != 200 || pw == nil {
		t.Fatalf("add user = %d, no generated password:\n%s", code, body)
	}
	if _, code := e.client(t, "eve", pw[1]); code != 200 {
		t.Errorf("login with the generated password = %d", code)
	}
	for _, tc := range []struct {
		path string
		form url.Values
		want int
	}{
		{"/ui/users/root/role", url.Values{"role": {"viewer"}}, http.StatusConflict}, // last admin
		{"/ui/users/root/disable", nil, http.StatusConflict},
		{"/ui/users/root/delete", nil, http.StatusConflict},
		{"/ui/users/ada/role", url.Values{"role": {"god"}}, http.StatusBadRequest},
		{"/ui/users/ada/password", url.Values{"password": {"short"}}, http.StatusBadRequest},
		{"/ui/users/nobody/disable", nil, http.StatusNotFound},
	} {
		if code, body := post(t, root, e.srv.URL+tc.path, tc.form); code != tc.want {
			t.Errorf("POST %s = %d, want %d:\n%s", tc.path, code, tc.want, body)
		}
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/ui/users/ada/delete", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if res, err := root.Do(req); err != nil || res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site user delete = %v %v, want 403", res.StatusCode, err)
	} else {
		res.Body.Close()
	}
	if code, body := post(t, root, e.srv.URL+"/ui/users/vic/password", url.Values{"password": {"a chosen long password"}}); code != 200 || strings.Contains(body, `id="new-password"`) {
		t.Errorf("set password = %d (and no generated password expected)", code)
	}
	if _, code := e.client(t, "vic", "a chosen long password"); code != 200 {
		t.Errorf("login with the set password = %d", code)
	}
	// Changing ada's role ends her session at once.
	if code, _ := post(t, root, e.srv.URL+"/ui/users/ada/role", url.Values{"role": {"viewer"}}); code != 200 {
		t.Errorf("change role = %d", code)
	}
	noRedirect := *op
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if code, _, _ := get(t, &noRedirect, e.srv.URL+"/ui/certificates"); code != http.StatusSeeOther {
		t.Errorf("ada's old session after role change = %d, want 303 to login", code)
	}
	if code, _ := post(t, root, e.srv.URL+"/ui/users/eve/disable", nil); code != 200 {
		t.Errorf("disable = %d", code)
	}
	if _, code := e.client(t, "eve", pw[1]); code != http.StatusUnauthorized {
		t.Errorf("disabled user login = %d, want 401", code)
	}
	if code, _ := post(t, root, e.srv.URL+"/ui/users/eve/delete", nil); code != 200 {
		t.Errorf("delete = %d", code)
	}
	for action, want := range map[string]int{"user.create": 5, "user.role": 1, "user.password": 1, "user.disable": 1, "user.delete": 1} {
		if evs, _ := e.store.Events(ctx, inventory.EventFilter{Action: action}); len(evs) != want {
			t.Errorf("%s events = %d, want %d", action, len(evs), want)
		}
	}

	// Schedules: operators create, pause and delete; the allow-list applies.
	op, _ = e.client(t, "root", "correct horse battery")
	vic, _ := e.client(t, "vic", "a chosen long password")
	form := url.Values{"targets": {"127.0.0.1"}, "ports": {"443, 8443"}, "interval": {"24h"}, "enabled": {"true"}}
	if code, _ := post(t, vic, e.srv.URL+"/ui/discovery/schedules", form); code != http.StatusForbidden {
		t.Errorf("viewer schedule = %d, want 403", code)
	}
	for _, bad := range []url.Values{
		{"targets": {"10.0.0.1"}, "interval": {"1h"}},
		{"targets": {"127.0.0.1"}, "interval": {"10s"}},
		{"targets": {"127.0.0.1"}, "interval": {"soon"}},
		{"targets": {"127.0.0.1"}, "ports": {"99999"}, "interval": {"1h"}},
		{"targets": {""}, "interval": {"1h"}},
	} {
		code, body := post(t, op, e.srv.URL+"/ui/discovery/schedules", bad)
		if code != http.StatusBadRequest {
			t.Errorf("schedule %v = %d, want 400", bad, code)
		}
		if bad.Get("targets") == "10.0.0.1" && !strings.Contains(body, "10.0.0.1 is not on the scan allow-list") {
			t.Errorf("allow-list refusal does not say why:\n%s", body)
		}
	}
	code, body = post(t, op, e.srv.URL+"/ui/discovery/schedules", form)
	if code != 200 || !strings.Contains(body, "Schedule created") || !strings.Contains(body, "443, 8443") || !strings.Contains(body, "<td>1d</td>") {
		t.Errorf("create schedule = %d:\n%s", code, body)
	}
	if code, body := post(t, op, e.srv.URL+"/ui/discovery/schedules/1/pause", nil); code != 200 || !strings.Contains(body, "/ui/discovery/schedules/1/resume") {
		t.Errorf("pause = %d:\n%s", code, body)
	}
	if code, _ := post(t, op, e.srv.URL+"/ui/discovery/schedules/1/delete", nil); code != 200 {
		t.Errorf("delete schedule = %d", code)
	}
	if code, _ := post(t, op, e.srv.URL+"/ui/discovery/schedules/1/delete", nil); code != http.StatusNotFound {
		t.Errorf("delete deleted schedule = %d, want 404", code)
	}
	for _, a := range []string{"discovery.schedule.create", "discovery.schedule.pause", "discovery.schedule.delete"} {
		evs, _ := e.store.Events(ctx, inventory.EventFilter{Action: a})
		if len(evs) == 0 || evs[0].Actor != "user:root" {
			t.Errorf("%s events = %+v", a, evs)
		}
	}
}
