package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServe runs `mica serve` with JSON logs: both listeners answer, a
// request is logged with method, path, status and remote but without its
// Authorization header or query string, and SIGINT stops it with exit 0.
func TestServe(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t)
	cfgPath := filepath.Join(c.dir, "mica.yaml")
	yaml, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, []byte(strings.Replace(string(yaml), "format: text", "format: json", 1)), 0o640)

	cmd := exec.Command(micaBin, "serve", "--data", c.dir, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	cmd.Env = baseEnv()
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	serving := make(chan map[string]any, 1)
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			logs.Write([]byte(line + "\n"))
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "serving" {
				serving <- rec
			}
		}
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	var rec map[string]any
	select {
	case rec = <-serving:
	case <-time.After(60 * time.Second):
		t.Fatalf("mica serve did not log \"serving\" within 60s:\n%s", logs)
	}
	httpsBase, _ := rec["https"].(string)
	plainBase, _ := rec["http"].(string)
	if !strings.HasPrefix(httpsBase, "https://127.0.0.1:") || !strings.HasPrefix(plainBase, "http://127.0.0.1:") {
		t.Fatalf("serving record = %v", rec)
	}

	pool := x509.NewCertPool()
	pool.AddCert(readCerts(t, filepath.Join(c.dir, rootPEM))[0])
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, u := range []string{httpsBase + "healthz", plainBase + "healthz"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s = %d", u, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", httpsBase+"nope?token=query-secret-value", nil)
	req.Header.Set("Authorization", "Basic aGVhZGVyLXNlY3JldC12YWx1ZQ==")
	if resp, err := client.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("mica serve after SIGINT: %v, want exit 0\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("mica serve did not stop within 30s of SIGINT:\n%s", logs)
	}

	out := logs.String()
	var found bool
	for _, line := range strings.Split(out, "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) != nil || r["msg"] != "request" || r["path"] != "/nope" {
			continue
		}
		found = true
		if r["method"] != "GET" || r["status"] != float64(404) || !strings.HasPrefix(r["remote"].(string), "127.0.0.1:") || r["duration"] == nil {
			t.Errorf("request log record = %v", r)
		}
	}
	if !found {
		t.Errorf("no JSON request log for /nope:\n%s", out)
	}
	for _, secret := range []string{"query-secret-value", "aGVhZGVyLXNlY3JldC12YWx1ZQ", "Authorization"} {
		if strings.Contains(out, secret) {
			t.Errorf("serve logs contain %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, `"msg":"stopped"`) {
		t.Errorf("no clean-stop log line:\n%s", out)
	}
	c.checkNoSecrets(out)
}
