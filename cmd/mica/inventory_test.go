package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lastLine is a command's last stdout line (where secrets shown once go).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// TestInventoryAPIAndDiscovery drives a real `mica dev` the way an
// automation script would: API tokens from `mica token create`, the
// admin API over the dev HTTPS listener (roles, search, revoke, a
// discovery job run by the server's poller), and `mica discover scan` /
// `files` from the CLI, including an allow-list refusal.
func TestInventoryAPIAndDiscovery(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, dir)
	httpsBase := reHTTPS.FindString(d.stdout)
	if httpsBase == "" {
		t.Fatalf("no HTTPS URL in the banner:\n%s", d.stdout)
	}
	c := &tca{t: t, dir: dir}
	if fi, err := os.Stat(filepath.Join(dir, devAdminFile)); err != nil || fi.Mode().Perm() != 0o600 ||
		!strings.Contains(d.stderr.String(), devAdminFile) {
		t.Errorf("dev admin password file: %v %v; stderr:\n%s", fi, err, d.stderr)
	}
	work := t.TempDir()
	leaf := filepath.Join(work, "api.pem")
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "api-target.test"}), "--profile", "server", "--out", leaf)...)
	serial := readCerts(t, leaf)[0].SerialNumber.Text(16)

	tokens := map[string]string{}
	for _, role := range []string{"viewer", "operator", "auditor"} {
		r := c.must(c.data("token", "create", "--role", role, "--label", "test")...)
		tokens[role] = lastLine(r.stdout)
		if !strings.HasPrefix(tokens[role], "mica_") {
			t.Fatalf("token create printed %q last", tokens[role])
		}
	}
	if r := c.run(c.data("token", "create", "--role", "root")...); r.code != exitUsage {
		t.Errorf("token create --role root: exit %d, want %d", r.code, exitUsage)
	}
	pool := x509.NewCertPool()
	for _, cert := range readCerts(t, filepath.Join(dir, rootPEM)) {
		pool.AddCert(cert)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(role, method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, httpsBase+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokens[role])
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: not JSON: %q", method, path, raw)
		}
		return res.StatusCode, out
	}
	if code, _ := call("nobody", "GET", "/api/v1/certificates", ""); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	code, body := call("viewer", "GET", "/api/v1/certificates?q="+url.QueryEscape("api-target"), "")
	if code != 200 || len(body["certificates"].([]any)) != 1 {
		t.Fatalf("search api-target = %d %v", code, body)
	}
	if code, _ := call("viewer", "POST", "/api/v1/certificates/"+serial+"/revoke", `{"reason":"keyCompromise"}`); code != 403 {
		t.Errorf("viewer revoke = %d, want 403", code)
	}
	code, body = call("operator", "POST", "/api/v1/certificates/"+serial+"/revoke", `{"reason":"keyCompromise"}`)
	if code != 200 || body["state"] != "revoked" {
		t.Fatalf("operator revoke = %d %v", code, body)
	}
	code, body = call("auditor", "GET", "/api/v1/events?action=cert.revoke", "")
	if code != 200 || len(body["events"].([]any)) == 0 {
		t.Errorf("audit events = %d %v", code, body)
	}

	// The CLI scan: the dev server presents a MICA certificate; 10.0.0.1
	// is refused by the loopback-only default before any connection.
	host := strings.TrimPrefix(httpsBase, "https://")
	r := c.run(c.data("discover", "scan", "--targets", host+",10.0.0.1:443")...)
	if r.code != exitRefused || !strings.Contains(r.stderr, "allow-list") {
		t.Errorf("scan with 10.0.0.1: exit %d, stderr %q; want refused by the allow-list", r.code, r.stderr)
	}
	r = c.must(c.data("discover", "scan", "--targets", host, "--timeout", "3s")...)
	if !strings.Contains(r.stdout, "1 certificates (0 external), 0 errors") {
		t.Errorf("scan output:\n%s", r.stdout)
	}
	files := filepath.Join(work, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	pemData, _ := os.ReadFile(leaf)
	os.WriteFile(filepath.Join(files, "ours.pem"), pemData, 0o600)
	os.WriteFile(filepath.Join(files, "junk.crt"), []byte("junk"), 0o600)
	// File discovery is off until discovery.file_roots names where.
	r = c.run(c.data("discover", "files", files)...)
	if r.code != exitRefused || !strings.Contains(r.stderr, "file discovery is disabled") {
		t.Errorf("discover files without file_roots: exit %d, stderr %q; want refused", r.code, r.stderr)
	}
	appendYAML(t, dir, "\ndiscovery:\n  file_roots: ["+files+"]\n")
	r = c.must(c.data("discover", "files", files)...)
	if !strings.Contains(r.stdout, "1 certificates (0 external), 1 errors") || !strings.Contains(r.stdout, "junk.crt") {
		t.Errorf("files output:\n%s", r.stdout)
	}

	// The host agent reports the same directory over mutual TLS with a
	// MICA-issued client certificate; locations carry its CN as host.
	agentCSR := makeCSR(t, csrOpts{cn: "agent-host.test"})
	agentCert := filepath.Join(work, "agent.pem")
	c.must(c.data("cert", "issue", "--csr", agentCSR, "--profile", "client", "--out", agentCert)...)
	r = c.must("agent", "--server", httpsBase, "--cert", agentCert, "--key", filepath.Join(filepath.Dir(agentCSR), "key.pem"),
		"--ca", filepath.Join(dir, rootPEM), "--paths", files, "--once")
	if !strings.Contains(r.stdout, "reported 1 certificates") {
		t.Errorf("agent output: %s", r.stdout)
	}
	code, body = call("viewer", "GET", "/api/v1/certificates/"+serial, "")
	if raw, _ := json.Marshal(body["installations"]); code != 200 || !strings.Contains(string(raw), `"location":"agent-host.test:`) ||
		!strings.Contains(string(raw), `"kind":"agent"`) {
		t.Errorf("installations after agent report = %d %s", code, raw)
	}

	// A job queued through the API is run by the server's poller.
	code, body = call("operator", "POST", "/api/v1/discovery/jobs", `{"kind":"scan","targets":["`+host+`"]}`)
	if code != 202 {
		t.Fatalf("queue job = %d %v", code, body)
	}
	id := int(body["id"].(float64))
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body = call("viewer", "GET", "/api/v1/discovery/jobs/"+jsonInt(id), "")
		if code == 200 && body["state"] == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d not done after 30s: %v", id, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if body["found"].(float64) != 1 {
		t.Errorf("API scan job = %v, want 1 found", body)
	}
	if code, _ := call("operator", "POST", "/api/v1/discovery/jobs", `{"kind":"scan","targets":["10.0.0.1"]}`); code != 403 {
		t.Errorf("API job for 10.0.0.1 = %d, want 403", code)
	}
}

func jsonInt(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
