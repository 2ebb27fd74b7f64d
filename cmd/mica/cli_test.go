package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInitIssueVerify is the issue's headline: a CSR made by openssl,
// issued by `mica cert issue`, verifies with openssl against root.pem and
// issuing.pem.
func TestInitIssueVerify(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	c := newSoftCA(t, "--org", "Example Corp", "--root-cn", "Example Root", "--issuing-cn", "Example Issuing")
	for _, f := range []string{rootPEM, issuingPEM, chainPEM, "mica.yaml"} {
		if _, err := os.Stat(filepath.Join(c.dir, f)); err != nil {
			t.Errorf("init did not write %s: %v", f, err)
		}
	}
	chain := readCerts(t, filepath.Join(c.dir, chainPEM))
	if len(chain) != 2 || chain[0].Subject.CommonName != "Example Issuing" || chain[1].Subject.CommonName != "Example Root" {
		t.Errorf("chain.pem = %v, want issuing then root", chain)
	}

	// A second init of the same directory is refused and changes nothing.
	before, _ := os.ReadFile(filepath.Join(c.dir, rootPEM))
	r := c.run("init", "--data", c.dir, "--secret-file", writeSecret(t, t.TempDir(), "p", newSecret(t)))
	wantExit(t, r, exitConfig, "already initialised")
	after, _ := os.ReadFile(filepath.Join(c.dir, rootPEM))
	if string(before) != string(after) {
		t.Error("a refused re-init changed root.pem")
	}

	csr := makeCSR(t, csrOpts{cn: "a.test"})
	leaf := filepath.Join(t.TempDir(), "leaf.pem")
	c.must(c.data("cert", "issue", "--csr", csr, "--profile", "server", "--out", leaf)...)
	certs := readCerts(t, leaf)
	if len(certs) != 2 || certs[0].Subject.CommonName != "a.test" || certs[1].Subject.CommonName != "Example Issuing" {
		t.Fatalf("--out file = %d certs %v, want leaf a.test then the issuing CA", len(certs), certs)
	}
	out := openssl(t, "verify", "-CAfile", filepath.Join(c.dir, rootPEM), "-untrusted", filepath.Join(c.dir, issuingPEM), leaf)
	if !strings.Contains(out, "OK") {
		t.Errorf("openssl verify: %s", out)
	}

	// Standard output, and a DER request, work the same way.
	der := makeCSR(t, csrOpts{cn: "b.test", outform: "DER"})
	r = c.must(c.data("cert", "issue", "--csr", der, "--profile", "server")...)
	got := parseCerts(t, []byte(r.stdout))
	if len(got) != 2 || got[0].DNSNames[0] != "b.test" {
		t.Errorf("stdout certs = %v, want leaf b.test + issuing", got)
	}
	if !strings.Contains(r.stderr, "issued serial=") {
		t.Errorf("no issuance summary on stderr: %v", r)
	}

	// --lifetime and --not-after set the validity within the cap.
	r = c.must(c.data("cert", "issue", "--csr", csr, "--profile", "server", "--lifetime", "30d")...)
	lc := parseCerts(t, []byte(r.stdout))[0]
	if life := lc.NotAfter.Sub(lc.NotBefore); life > 30*24*time.Hour || life < 30*24*time.Hour-2*time.Minute {
		t.Errorf("--lifetime 30d gave a validity of %v", life)
	}
	na := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	r = c.must(c.data("cert", "issue", "--csr", csr, "--profile", "server", "--not-after", na.Format(time.RFC3339))...)
	if got := parseCerts(t, []byte(r.stdout))[0].NotAfter; !got.Equal(na) {
		t.Errorf("--not-after %v gave NotAfter %v", na, got)
	}
	if n := len(c.list("--state", "issued")); n != 4 {
		t.Errorf("cert list --state issued = %d certificates, want 4", n)
	}
}

// TestCertListShowRevoke types serials the ways people copy them: as
// `openssl x509 -serial` prints them, in lower case with colons as
// `openssl x509 -text` does.
func TestCertListShowRevoke(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	c := newSoftCA(t)
	var serials []string
	for _, cn := range []string{"a.test", "b.test"} {
		leaf := filepath.Join(t.TempDir(), "leaf.pem")
		c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: cn}), "--profile", "server", "--out", leaf)...)
		serials = append(serials, opensslSerial(t, leaf))
	}
	colons := func(s string) string { // "0A1B" → "0a:1b"
		s = strings.ToLower(s)
		var parts []string
		for i := 0; i < len(s); i += 2 {
			parts = append(parts, s[i:i+2])
		}
		return strings.Join(parts, ":")
	}

	r := c.must(c.data("cert", "show", colons(serials[0]))...)
	for _, want := range []string{"State:", "issued", "CN=a.test", "dns:a.test", "Profile:", "server", "SHA-256"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cert show lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := c.must(c.data("cert", "show", serials[0], "--pem")...); parseCerts(t, []byte(r.stdout))[0].Subject.CommonName != "a.test" {
		t.Errorf("cert show --pem = %s", r.stdout)
	}

	list := c.list()
	if len(list) != 2 || list[0].Serial != serials[1] || list[1].Serial != serials[0] {
		t.Errorf("cert list = %+v, want b then a (newest first) with serials %v", list, serials)
	}
	if got := c.list("-q", "b.test"); len(got) != 1 || got[0].Serial != serials[1] {
		t.Errorf("cert list -q b.test = %+v", got)
	}
	if got := c.list("--profile", "client"); len(got) != 0 {
		t.Errorf("cert list --profile client = %+v, want none", got)
	}
	table := c.must(c.data("cert", "list")...).stdout
	if !strings.Contains(table, "SERIAL") || !strings.Contains(table, serials[0]) {
		t.Errorf("cert list table:\n%s", table)
	}

	upperColons := strings.ToUpper(colons(serials[0]))
	r = c.must(c.data("cert", "revoke", upperColons, "--reason", "keyCompromise")...)
	if !strings.Contains(r.stdout, "revoked") {
		t.Errorf("cert revoke output: %v", r)
	}
	r = c.must(c.data("cert", "show", strings.ToLower(serials[0]))...)
	if !strings.Contains(r.stdout, "revoked (keyCompromise") {
		t.Errorf("cert show after revoke:\n%s", r.stdout)
	}
	if got := c.list("--state", "revoked"); len(got) != 1 || got[0].Serial != serials[0] {
		t.Errorf("cert list --state revoked = %+v", got)
	}
	if got := c.list("--state", "issued"); len(got) != 1 || got[0].Serial != serials[1] {
		t.Errorf("cert list --state issued = %+v", got)
	}

	wantExit(t, c.run(c.data("cert", "revoke", serials[0], "--reason", "keyCompromise")...), exitRefused, "already revoked")
	wantExit(t, c.run(c.data("cert", "revoke", serials[1], "--reason", "bogus")...), exitRefused, "bogus")
	wantExit(t, c.run(c.data("cert", "revoke", serials[1])...), exitUsage, "--reason")
	wantExit(t, c.run(c.data("cert", "show", "0123456789abcdef")...), exitNotFound, "no certificate")
	wantExit(t, c.run(c.data("cert", "show", "not-hex")...), exitUsage, "not a serial")
	wantExit(t, c.run(c.data("cert", "list", "--state", "sleepy")...), exitUsage, "sleepy")
}

// TestSecretsStayOut checks the places a secret could leak: mica.yaml,
// `config show` (even with the secret in the environment), error output.
func TestSecretsStayOut(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	c := &tca{t: t, dir: filepath.Join(t.TempDir(), "data"), env: []string{"MICA_TEST_PP=" + secret}, secrets: []string{secret}}
	c.must("init", "--data", c.dir, "--secret-env", "MICA_TEST_PP")
	yaml, _ := os.ReadFile(filepath.Join(c.dir, "mica.yaml"))
	if strings.Contains(string(yaml), secret) || !strings.Contains(string(yaml), "secret_env: MICA_TEST_PP") {
		t.Errorf("mica.yaml:\n%s", yaml)
	}
	r := c.must(c.data("config", "show")...)
	for _, want := range []string{"secret_env: MICA_TEST_PP", "crl_base: http://127.0.0.1:8080/crl/", "profiles:", "server:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("config show lacks %q:\n%s", want, r.stdout)
		}
	}
	c.must(c.data("ca", "show")...)
	c.must(c.data("hsm", "keys")...)
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{}), "--profile", "server", "--debug")...)

	// A pin/passphrase key in mica.yaml is refused with advice.
	cfg := filepath.Join(t.TempDir(), "mica.yaml")
	os.WriteFile(cfg, append(yaml, []byte("\n# oops\n")...), 0o600)
	f, _ := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("profiles:\n  x:\n    passphrase: " + secret + "\n")
	f.Close()
	wantExit(t, c.run("config", "show", "--config", cfg), exitConfig, "passphrase", "secret_file")

	// Secrets on the command line are refused before anything runs.
	for _, args := range [][]string{
		{"init", "--data", t.TempDir(), "--pin", secret},
		{"init", "--data", t.TempDir(), "--passphrase=" + secret},
		{"init", "--data", t.TempDir(), "--backend", "pkcs11:module-path=/x.so;token=t?pin-value=" + secret},
		{"cert", "list", "--data", c.dir, "-q", secret}, // the secret itself, typed as any argument
	} {
		wantExit(t, c.run(args...), exitUsage, "command-line argument", "--secret-file")
	}
}

func TestUsageAndHelp(t *testing.T) {
	t.Parallel()
	c := &tca{t: t, dir: filepath.Join(t.TempDir(), "none")}
	r := c.run("help")
	if r.code != 0 || !strings.Contains(r.stdout, "Exit codes:") || !strings.Contains(r.stdout, "cert issue") {
		t.Errorf("mica help: %v", r)
	}
	wantExit(t, c.run(), exitUsage)
	wantExit(t, c.run("frobnicate"), exitUsage, "unknown command")
	wantExit(t, c.run("cert", "issue", "--data", c.dir), exitUsage, "--csr")
	wantExit(t, c.run("cert", "issue", "--bogus"), exitUsage, "bogus")
	wantExit(t, c.run("cert", "list", "--data", c.dir), exitConfig, "not initialised", "mica init")
	wantExit(t, c.run("init", "--data", c.dir), exitConfig, "passphrase")
	if r := c.run("cert", "issue", "-h"); r.code != 0 || !strings.Contains(r.stdout, "--profile") {
		t.Errorf("cert issue -h: %v", r)
	}
	if r := c.run("version"); r.code != 0 || !strings.HasPrefix(r.stdout, "mica ") {
		t.Errorf("mica version: %v", r)
	}
}
