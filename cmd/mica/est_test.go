package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestESTDev drives `mica dev`'s default EST label with curl and openssl,
// the way a device shell script would: cacerts, csrattrs, simpleenroll
// with a token from `mica est token create` (one-line base64, no
// Content-Transfer-Encoding), token reuse refused, simplereenroll with the
// device's certificate, serverkeygen; then the held-enrollment commands.
func TestESTDev(t *testing.T) {
	t.Parallel()
	requireTool(t, "curl")
	requireTool(t, "openssl")
	dir := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, dir)
	base := reHTTPS.FindString(d.stdout) + "/.well-known/est"
	if !strings.Contains(d.stdout, base+"/") {
		t.Errorf("banner lacks the EST URL %s/:\n%s", base, d.stdout)
	}
	c := &tca{t: t, dir: dir}
	tok := c.must("est", "token", "create", "--data", dir, "--label", "default", "--ttl", "1h")
	lines := strings.Split(strings.TrimSpace(tok.stdout), "\n")
	cred := lines[len(lines)-1]
	if !strings.Contains(cred, ":") {
		t.Fatalf("last line of est token create is %q, want USER:PASSWORD", cred)
	}
	work := t.TempDir()
	shell := func(script string) string {
		t.Helper()
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Dir = work
		cmd.Env = append(baseEnv(), "ROOT="+filepath.Join(dir, rootPEM), "BASE="+base, "CRED="+cred)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s%s", script, err, out.String(), errb.String())
		}
		return out.String()
	}
	if out := shell(`curl -sS --fail --cacert "$ROOT" "$BASE/cacerts" | base64 -d | openssl pkcs7 -inform DER -print_certs`); strings.Count(out, "BEGIN CERTIFICATE") != 2 {
		t.Errorf("cacerts:\n%s", out)
	}
	if out := shell(`curl -sS --fail --cacert "$ROOT" "$BASE/csrattrs" | base64 -d | openssl asn1parse -inform DER`); !strings.Contains(out, "prime256v1") {
		t.Errorf("csrattrs:\n%s", out)
	}
	shell(`openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dev.key -subj /CN=dev1 -outform DER 2>/dev/null | base64 -w0 > req.b64
curl -sS --fail --cacert "$ROOT" -u "$CRED" -H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$BASE/simpleenroll" | base64 -d | openssl pkcs7 -inform DER -print_certs > dev.pem`)
	if code := shell(`curl -sS -o /dev/null -w '%{http_code}' --cacert "$ROOT" -u "$CRED" -H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$BASE/simpleenroll"`); code != "401" {
		t.Errorf("token reuse answered %s, want 401", code)
	}
	shell(`openssl req -new -key dev.key -subj /CN=dev1 -outform DER | base64 -w0 > re.b64
curl -sS --fail --cacert "$ROOT" --cert dev.pem --key dev.key -H 'Content-Type: application/pkcs10' --data-binary @re.b64 "$BASE/simplereenroll" | base64 -d | openssl pkcs7 -inform DER -print_certs > dev2.pem`)
	old, renewed := shell(`openssl x509 -in dev.pem -noout -serial`), shell(`openssl x509 -in dev2.pem -noout -serial`)
	if old == renewed {
		t.Errorf("re-enrollment returned the same certificate")
	}
	// The inventory links the renewal to its predecessor.
	oldSerial := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(old), "serial="))
	show := c.must("cert", "show", oldSerial, "--data", dir)
	if !strings.Contains(show.stdout, "superseded") {
		t.Errorf("old certificate after re-enrollment:\n%s", show.stdout)
	}

	tok2 := c.must("est", "token", "create", "--data", dir, "--names", "dev3.test")
	l2 := strings.Split(strings.TrimSpace(tok2.stdout), "\n")
	out := shell(`openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout t.key -subj /CN=dev3.test -addext subjectAltName=DNS:dev3.test -outform DER 2>/dev/null | base64 -w0 > skg.b64
curl -sS --fail --cacert "$ROOT" -u '` + l2[len(l2)-1] + `' -H 'Content-Type: application/pkcs10' --data-binary @skg.b64 "$BASE/serverkeygen"`)
	if !strings.Contains(out, "application/pkcs8") || !strings.Contains(out, "application/pkcs7-mime") {
		t.Errorf("serverkeygen response:\n%s", out)
	}

	c.must("est", "pending", "--data", dir)
	wantExit(t, c.run("est", "approve", "nosuch", "--data", dir), exitNotFound, "no held EST enrollment")
	if err := d.stop(t); err != nil {
		t.Errorf("mica dev exit: %v", err)
	}
}
