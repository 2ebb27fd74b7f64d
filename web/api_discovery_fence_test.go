package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/discover"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/web"
)

// File discovery jobs through the admin API over HTTPS, vetted by the
// real discover.Fence: only admins, only regular files under the roots;
// /proc/self/environ, a FIFO, a link out of the root, the data directory
// and an operator's job are refused before anything is queued, each
// with a clear message and a denied audit event.
func TestAPIFileDiscoveryFenced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := inventorytest.SQLite(t)
	base := t.TempDir()
	root, data := filepath.Join(base, "certs"), filepath.Join(base, "certs", "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(base, "secret.pem")
	for _, p := range []string{outside, filepath.Join(root, "ok.pem")} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo.pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape.pem")); err != nil {
		t.Fatal(err)
	}
	fence, err := discover.NewFence([]string{root}, data)
	if err != nil {
		t.Fatal(err)
	}
	runner := &discover.Runner{Allow: discover.LoopbackOnly(), Files: fence}
	tokens := map[string]string{}
	for _, role := range []string{inventory.RoleAdmin, inventory.RoleOperator} {
		tok, _, err := s.CreateAPIToken(ctx, role, "test", inventory.Event{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		tokens[role] = tok
	}
	r := chi.NewRouter()
	web.New(s, &fakeRevoker{store: s}, slog.New(slog.DiscardHandler)).WithJobChecker(runner.Check).Mount(r, chi.NewRouter())
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	post := func(role, path string) (int, string) {
		body, _ := json.Marshal(map[string]any{"kind": "files", "paths": []string{path}})
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/discovery/jobs", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+tokens[role])
		req.Header.Set("Content-Type", "application/json")
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	refused := []struct {
		name, role, path string
		code             int
		msg              string
	}{
		{"/proc/self/environ", "admin", "/proc/self/environ", 400, "not allowed"},
		{"FIFO", "admin", filepath.Join(root, "fifo.pem"), 400, "not a regular file"},
		{"symlink escaping the root", "admin", filepath.Join(root, "escape.pem"), 400, "outside discovery.file_roots"},
		{"data directory", "admin", data, 400, "data directory"},
		{"non-admin role", "operator", filepath.Join(root, "ok.pem"), 403, "needs admin"},
	}
	for _, tc := range refused {
		if code, body := post(tc.role, tc.path); code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: POST files job = %d %s, want %d naming %q", tc.name, code, body, tc.code, tc.msg)
		}
	}
	jobs, err := s.DiscoveryJobs(ctx, 0, 100)
	if err != nil || len(jobs) != 0 {
		t.Errorf("refused jobs were queued: %+v, %v", jobs, err)
	}
	evs, err := s.Events(ctx, inventory.EventFilter{Action: "discovery.create"})
	if err != nil || len(evs) != len(refused) {
		t.Fatalf("discovery.create events = %d, %v; want %d denied", len(evs), err, len(refused))
	}
	for _, ev := range evs {
		if ev.Outcome != "denied" || !strings.Contains(string(ev.Details), `"kind":"files"`) {
			t.Errorf("refusal event %+v", ev)
		}
	}
	if code, body := post("admin", filepath.Join(root, "ok.pem")); code != http.StatusAccepted {
		t.Errorf("admin job for a file under the root = %d %s, want 202", code, body)
	}
}
