package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

func TestAPIPatchLabels(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newAPI(t, s)
			path := "/api/v1/certificates/" + e.certs[0].Serial
			for _, tc := range []struct {
				role, body string
				want       int
			}{
				{"viewer", `{"owner":"alice"}`, 403},
				{"operator", `{}`, 400},
				{"operator", `{"owner":"alice","colour":"red"}`, 400},
				{"operator", `{"owner":"` + strings.Repeat("a", 201) + `"}`, 400},
				{"operator", `{"team":"a\u0007b"}`, 400},
				{"operator", `{"add_tags":["NOT OK"]}`, 400},
				{"operator", `{"owner":"alice","tags":["pci","web"]}`, 200},
				{"operator", `{"team":"edge","remove_tags":["web"]}`, 200},
			} {
				if code, body := e.do(t, tc.role, "PATCH", path, tc.body); code != tc.want {
					t.Errorf("PATCH %s as %s = %d %v, want %d", tc.body, tc.role, code, body, tc.want)
				}
			}
			if code, _ := e.do(t, "operator", "PATCH", "/api/v1/certificates/ffff", `{"owner":"x"}`); code != 404 {
				t.Errorf("PATCH unknown = %d, want 404", code)
			}
			_, body := e.do(t, "viewer", "GET", path, "")
			l := body["labels"].(map[string]any)
			if l["owner"] != "alice" || l["team"] != "edge" || fmt.Sprint(l["tags"]) != "[pci]" {
				t.Errorf("labels after PATCH = %v", l)
			}
			evs, _ := s.Events(context.Background(), inventory.EventFilter{Action: "cert.label"})
			if len(evs) != 2 || !strings.Contains(string(evs[0].Details), `"old":{"owner":"alice","team":"","environment":"","tags":["pci","web"]}`) {
				t.Errorf("label events = %d, newest %s", len(evs), evs[0].Details)
			}
			if denied, _ := s.Events(context.Background(), inventory.EventFilter{Action: "api.access"}); len(denied) != 1 {
				t.Errorf("viewer PATCH audited %d times, want 1", len(denied))
			}
		})
	}
}

func TestAPIBulk(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newAPI(t, s)
			ctx := context.Background()
			two := fmt.Sprintf(`"serials":[%q,"ca/%s"]`, e.certs[0].Serial, e.certs[1].Serial)
			many := make([]string, 501)
			for i := range many {
				many[i] = fmt.Sprintf("%q", fmt.Sprintf("%x", i+1))
			}
			for _, tc := range []struct {
				role, body string
				want       int
			}{
				{"viewer", `{"action":"revoke","reason":"superseded",` + two + `}`, 403},
				{"operator", `{"action":"revoke","reason":"because",` + two + `}`, 400},
				{"operator", `{"action":"explode",` + two + `}`, 400},
				{"operator", `{"action":"label",` + two + `}`, 400},
				{"operator", `{"action":"label","labels":{"add_tags":["Bad Tag"]},` + two + `}`, 400},
				{"operator", `{"action":"revoke","reason":"superseded"}`, 400},
				{"operator", `{"action":"revoke","reason":"superseded",` + two + `,"filter":{"team":"x"}}`, 400},
				{"operator", `{"action":"revoke","reason":"superseded","serials":[` + strings.Join(many, ",") + `]}`, 400},
				{"operator", `{"action":"revoke","reason":"superseded","filter":{"bogus":"1"}}`, 400},
				{"operator", `{"action":"revoke","reason":"superseded","filter":{"cursor":"x"}}`, 400},
			} {
				if code, body := e.do(t, tc.role, "POST", "/api/v1/certificates/bulk", tc.body); code != tc.want {
					t.Errorf("bulk %.80s as %s = %d %v, want %d", tc.body, tc.role, code, body, tc.want)
				}
			}
			if len(e.rev.got) != 0 {
				t.Fatalf("refused bulk requests reached the revoker %d times", len(e.rev.got))
			}
			code, body := e.do(t, "operator", "POST", "/api/v1/certificates/bulk",
				`{"action":"revoke","reason":"superseded","serials":["`+e.certs[0].Serial+`","`+e.certs[1].Serial+`","ffff01"]}`)
			if code != 200 || body["ok"] != 2.0 || body["failed"] != 1.0 {
				t.Fatalf("bulk revoke = %d %v", code, body)
			}
			results := body["results"].([]any)
			if r := results[2].(map[string]any); r["ok"] != false || r["status"] != 404.0 {
				t.Errorf("unknown serial result = %v, want 404", r)
			}
			if len(e.rev.got) != 2 || e.rev.got[0].Protocol != "api" || e.rev.got[0].Reason != "superseded" {
				t.Errorf("revoker got %+v", e.rev.got)
			}
			// Label by filter: every certificate owned by nobody with CN c.test or d.test.
			code, body = e.do(t, "operator", "POST", "/api/v1/certificates/bulk",
				`{"action":"label","labels":{"owner":"bob","add_tags":["audit"]},"filter":{"q":"d.test"}}`)
			if code != 200 || body["ok"] != 1.0 {
				t.Fatalf("bulk label = %d %v", code, body)
			}
			d, _ := s.CertificateDetail(ctx, "ca", e.certs[3].Serial)
			if d.Labels.Owner != "bob" || fmt.Sprint(d.Labels.Tags) != "[audit]" {
				t.Errorf("labels after bulk = %+v", d.Labels)
			}
			evs, _ := s.Events(ctx, inventory.EventFilter{Action: "cert.bulk"})
			if len(evs) != 2 || !strings.Contains(string(evs[1].Details), `"count":3`) || !strings.Contains(string(evs[0].Details), `"filter":{"q":"d.test"}`) ||
				!strings.HasPrefix(evs[0].Actor, "token:") {
				t.Errorf("bulk events = %+v", evs)
			}
		})
	}
}

func TestAPIUsersAdmin(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newAPI(t, s)
			for _, u := range []string{`{"name":"root","role":"admin","password":"long enough password"}`,
				`{"name":"ada","role":"operator","password":"long enough password"}`} {
				if code, body := e.do(t, "admin", "POST", "/api/v1/users", u); code != 201 {
					t.Fatalf("create = %d %v", code, body)
				}
			}
			for _, tc := range []struct {
				role, method, path, body string
				want                     int
			}{
				{"operator", "PATCH", "/api/v1/users/ada", `{"role":"admin"}`, 403},
				{"operator", "DELETE", "/api/v1/users/ada", ``, 403},
				{"operator", "POST", "/api/v1/users/ada/password", `{}`, 403},
				{"admin", "PATCH", "/api/v1/users/root", `{"role":"viewer"}`, 409},
				{"admin", "PATCH", "/api/v1/users/root", `{"disabled":true}`, 409},
				{"admin", "DELETE", "/api/v1/users/root", ``, 409},
				{"admin", "PATCH", "/api/v1/users/ada", `{}`, 400},
				{"admin", "PATCH", "/api/v1/users/ada", `{"role":"king"}`, 400},
				{"admin", "PATCH", "/api/v1/users/nobody", `{"role":"viewer"}`, 404},
				{"admin", "POST", "/api/v1/users/ada/password", `{"password":"short"}`, 400},
				{"admin", "GET", "/api/v1/users/ada", ``, 200},
				{"admin", "PATCH", "/api/v1/users/ada", `{"role":"admin","disabled":true}`, 200},
				{"admin", "PATCH", "/api/v1/users/ada", `{"disabled":false}`, 200},
				{"admin", "POST", "/api/v1/users/ada/password", `{"password":"another long password"}`, 200},
				{"admin", "DELETE", "/api/v1/users/root", ``, 200}, // ada is an enabled admin now
				{"admin", "DELETE", "/api/v1/users/ada", ``, 409},
			} {
				if code, body := e.do(t, tc.role, tc.method, tc.path, tc.body); code != tc.want {
					t.Errorf("%s %s %s as %s = %d %v, want %d", tc.method, tc.path, tc.body, tc.role, code, body, tc.want)
				}
			}
			code, body := e.do(t, "admin", "POST", "/api/v1/users/ada/password", `{}`)
			if pw, _ := body["password"].(string); code != 200 || len(pw) < 20 {
				t.Errorf("generated password = %d %v", code, body)
			}
			_, body = e.do(t, "admin", "GET", "/api/v1/users/ada", "")
			if body["role"] != "admin" || body["disabled_at"] != nil || body["password_hash"] != nil {
				t.Errorf("user = %v", body)
			}
			for action, want := range map[string]int{"user.role": 1, "user.disable": 1, "user.enable": 1, "user.password": 2, "user.delete": 1} {
				evs, _ := s.Events(context.Background(), inventory.EventFilter{Action: action})
				if len(evs) != want || (want > 0 && !strings.HasPrefix(evs[0].Actor, "token:")) {
					t.Errorf("%s events = %d, want %d", action, len(evs), want)
				}
			}
		})
	}
}

func TestAPISchedules(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newAPI(t, s)
			for _, tc := range []struct {
				role, method, path, body string
				want                     int
			}{
				{"viewer", "POST", "/api/v1/discovery/schedules", `{"targets":["127.0.0.1"],"interval":"1h"}`, 403},
				{"operator", "POST", "/api/v1/discovery/schedules", `{"targets":["10.0.0.1"],"interval":"1h"}`, 400},
				{"operator", "POST", "/api/v1/discovery/schedules", `{"targets":["127.0.0.1"],"interval":"5s"}`, 400},
				{"operator", "POST", "/api/v1/discovery/schedules", `{"targets":["127.0.0.1"],"interval":"often"}`, 400},
				{"operator", "POST", "/api/v1/discovery/schedules", `{"targets":[],"interval":"1h"}`, 400},
				{"operator", "POST", "/api/v1/discovery/schedules", `{"targets":["127.0.0.1"],"ports":[0],"interval":"1h"}`, 400},
				{"operator", "POST", "/api/v1/discovery/schedules", `{"targets":["127.0.0.1"],"ports":[443],"interval":"7d"}`, 201},
				{"viewer", "GET", "/api/v1/discovery/schedules", ``, 200},
				{"viewer", "GET", "/api/v1/discovery/schedules/1", ``, 200},
				{"viewer", "PATCH", "/api/v1/discovery/schedules/1", `{"enabled":false}`, 403},
				{"operator", "PATCH", "/api/v1/discovery/schedules/1", `{}`, 400},
				{"operator", "PATCH", "/api/v1/discovery/schedules/1", `{"enabled":false}`, 200},
				{"operator", "PATCH", "/api/v1/discovery/schedules/9", `{"enabled":true}`, 404},
				{"viewer", "DELETE", "/api/v1/discovery/schedules/1", ``, 403},
				{"operator", "DELETE", "/api/v1/discovery/schedules/1", ``, 200},
				{"operator", "DELETE", "/api/v1/discovery/schedules/1", ``, 404},
				{"operator", "DELETE", "/api/v1/discovery/schedules/x", ``, 404},
			} {
				code, body := e.do(t, tc.role, tc.method, tc.path, tc.body)
				if code != tc.want {
					t.Errorf("%s %s %s as %s = %d %v, want %d", tc.method, tc.path, tc.body, tc.role, code, body, tc.want)
				}
				if strings.Contains(tc.body, "10.0.0.1") && !strings.Contains(fmt.Sprint(body["error"]), "10.0.0.1 is not on the scan allow-list") {
					t.Errorf("allow-list refusal = %v, want it to name the target", body)
				}
				if code == 201 && (body["interval"] != "7d" || body["interval_seconds"] != 604800.0 || body["enabled"] != true) {
					t.Errorf("created schedule = %v", body)
				}
			}
			ctx := context.Background()
			for action, want := range map[string]int{"discovery.schedule.create": 2, "discovery.schedule.pause": 1, "discovery.schedule.delete": 1, "api.access": 3} {
				if evs, _ := s.Events(ctx, inventory.EventFilter{Action: action}); len(evs) != want {
					t.Errorf("%s events = %d, want %d", action, len(evs), want)
				}
			}
		})
	}
}
