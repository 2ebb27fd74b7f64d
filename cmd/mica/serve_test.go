package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
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

// servedReplica is one running `mica serve`.
type servedReplica struct {
	cmd   *exec.Cmd
	https string
	logs  *lockedBuffer
	done  chan error
}

// startReplica runs `mica serve` on loopback ports over dir (whose
// mica.yaml asks for JSON logs), with extra flags, and waits for its
// "serving" log line.
func startReplica(t *testing.T, dir string, extra ...string) *servedReplica {
	t.Helper()
	cmd := exec.Command(micaBin, append([]string{"serve", "--data", dir, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, extra...)...)
	cmd.Env = baseEnv()
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &servedReplica{cmd: cmd, logs: &lockedBuffer{}, done: make(chan error, 1)}
	serving := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			r.logs.Write([]byte(line + "\n"))
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "serving" {
				serving <- rec
			}
		}
		r.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-r.done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
			}
		}
	})
	select {
	case rec := <-serving:
		r.https, _ = rec["https"].(string)
	case <-time.After(60 * time.Second):
		t.Fatalf("mica serve did not log \"serving\" within 60s:\n%s", r.logs)
	}
	return r
}

// TestServeSwitchesIssuerWithoutRestart: two running `mica serve`
// replicas on one store serve the old issuing CA in EST /cacerts; a
// rotation is then scheduled a few seconds ahead with the CLI and the
// replicas told by SIGHUP to re-read the issuers (instead of waiting up to
// a minute for the issuer watch). After the activation time, with no
// restart, both serve the new CA first, the old one (still serving CRLs
// and OCSP) next and the root last, and log the switch. Nothing depends
// on how long start-up takes: the rotation is scheduled only once both
// replicas serve.
func TestServeSwitchesIssuerWithoutRestart(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	c := newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing")
	f, err := os.OpenFile(filepath.Join(c.dir, "mica.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\nest:\n  default: default\n  labels:\n    default:\n      profile: device\n      tokens: true\n")
	f.Close()
	cfgPath := filepath.Join(c.dir, "mica.yaml")
	yaml, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, []byte(strings.Replace(string(yaml), "format: text", "format: json", 1)), 0o640)
	replicas := []*servedReplica{startReplica(t, c.dir), startReplica(t, c.dir)}
	pool := x509.NewCertPool()
	pool.AddCert(readCerts(t, filepath.Join(c.dir, rootPEM))[0])
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	subjects := func(r *servedReplica) []string {
		t.Helper()
		resp, err := client.Get(r.https + ".well-known/est/cacerts")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("cacerts = %d %s", resp.StatusCode, body)
		}
		der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "cacerts.der")
		if err := os.WriteFile(p, der, 0o600); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, line := range strings.Split(openssl(t, "pkcs7", "-inform", "DER", "-in", p, "-print_certs", "-noout"), "\n") {
			if s, ok := strings.CutPrefix(line, "subject="); ok {
				out = append(out, strings.TrimSpace(s))
			}
		}
		return out
	}
	oldCN := "CN = " + readCerts(t, filepath.Join(c.dir, issuingPEM))[0].Subject.CommonName
	for i, r := range replicas {
		if before := subjects(r); len(before) != 2 || before[0] != oldCN {
			t.Fatalf("replica %d: cacerts before any rotation = %q, want the old issuing CA and the root", i, before)
		}
	}

	// Schedule the rotation now that both serve, and tell them. The
	// "re-read" log line is the barrier: after it the replica knows the
	// schedule (or, if the CLI was slow and the time has passed, has
	// switched already, which logs the switch too).
	at := time.Now().Add(8 * time.Second).UTC().Truncate(time.Second)
	c.must(c.data("ca", "rotate", "--id", "issuing-next", "--at", at.Format(time.RFC3339))...)
	for i, r := range replicas {
		if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(60 * time.Second); !strings.Contains(r.logs.String(), "issuing CAs re-read on SIGHUP"); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d did not re-read the issuers on SIGHUP:\n%s", i, r.logs)
			}
		}
		// Knowing the schedule does not switch early.
		got := subjects(r)
		if !time.Now().Before(at) {
			t.Logf("replica %d answered after the activation time; its pre-switch answer is not checked", i)
			continue
		}
		if len(got) != 2 || got[0] != oldCN {
			t.Fatalf("replica %d: cacerts before the activation time = %q, want the old issuing CA and the root", i, got)
		}
	}
	// Wait for the activation time itself (a barrier on the schedule the
	// test set, not a bound on anything measured).
	time.Sleep(time.Until(at) + time.Second)
	root, _ := strings.CutPrefix(strings.TrimSpace(openssl(t, "x509", "-in", filepath.Join(c.dir, rootPEM), "-noout", "-subject")), "subject=")
	root = strings.TrimSpace(root)
	for i, r := range replicas {
		after := subjects(r)
		if len(after) != 3 || after[0] == oldCN || after[1] != oldCN || after[2] != root {
			t.Errorf("replica %d: cacerts after the activation time = %q, want the new CA, the old one, the root", i, after)
		}
		if !strings.Contains(r.logs.String(), "issuance switched to a new issuing CA") {
			t.Errorf("replica %d did not log the switch:\n%s", i, r.logs)
		}
	}
}
