package main

// A compromised public key must be refused by every front end, not only the
// CLI: the check lives in ca's step 1, and this test proves that each
// protocol really goes through it, against one real `mica dev`, with the
// real clients (mica CLI, lego for ACME, curl + openssl for EST).

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestBlockedKeyRefusedEverywhere(t *testing.T) {
	needClients(t, "lego", "curl", "openssl")
	t.Parallel()
	l := newACMELab(t)
	c := l.ca
	work := t.TempDir()
	sh := func(script string) (string, error) {
		t.Helper()
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Dir = work
		cmd.Env = append(baseEnv(), "ROOT="+l.root)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// One key, three CSRs: a server name for the CLI and ACME, a device
	// CN for EST.
	if out, err := sh(`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k.pem 2>/dev/null
openssl req -new -key k.pem -subj /CN=blk.test -addext subjectAltName=DNS:blk.test -out srv.csr
openssl req -new -key k.pem -subj /CN=blkdev -outform DER -out dev.der
base64 -w0 dev.der > dev.b64`); err != nil {
		t.Fatalf("making CSRs: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(work, "srv.csr"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(csr.RawSubjectPublicKeyInfo)
	c.must(c.data("keys", "block", hex.EncodeToString(sum[:]), "--reason", "keyCompromise")...)

	// CLI.
	r := c.run(c.data("cert", "issue", "--csr", filepath.Join(work, "srv.csr"), "--profile", "server")...)
	wantExit(t, r, exitRefused, "public key is blocked")

	// ACME: lego orders with the blocked key's CSR; validation succeeds,
	// finalize is refused.
	path := t.TempDir()
	cmd := exec.Command("lego", "--server", l.dir, "--accept-tos", "--email", "a@b.test", "--path", path,
		"--csr", filepath.Join(work, "srv.csr"), "--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", l.http01), "run")
	cmd.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+l.root)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("lego obtained a certificate for a blocked key:\n%s", out)
	}
	t.Logf("lego: %s", lastLine(string(out)))
	if !strings.Contains(string(out), "blocked") {
		t.Errorf("lego failed, but not because the key is blocked:\n%s", out)
	}

	// EST: a valid one-time token, the blocked key → 403 with the reason.
	tok := c.must(c.data("est", "token", "create", "--label", "default", "--ttl", "1h")...)
	lines := strings.Split(strings.TrimSpace(tok.stdout), "\n")
	base := strings.Replace(l.dir, "/acme/default/directory", "/.well-known/est", 1)
	out2, err := sh(fmt.Sprintf(`curl -sS -w '\n%%{http_code}' --cacert "$ROOT" -u '%s' -H 'Content-Type: application/pkcs10' --data-binary @dev.b64 %s/simpleenroll`, lines[len(lines)-1], base))
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out2)
	}
	if !strings.HasSuffix(strings.TrimSpace(out2), "403") || !strings.Contains(out2, "blocked") {
		t.Errorf("EST enrollment with a blocked key answered:\n%s\nwant 403 naming the block", out2)
	}

	// Nothing was issued for that key anywhere.
	r = c.must(c.data("cert", "list", "-q", "blk", "--state", "issued,requested")...)
	if strings.Contains(r.stdout, "blk") {
		t.Errorf("certificates recorded for the blocked key:\n%s", r.stdout)
	}
}
