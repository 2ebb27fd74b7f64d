package main

// Acceptance tests run the real mica binary, built once in TestMain, the
// way an operator would: as a separate process, with real openssl CSRs,
// real SoftHSM2 tokens, real SQLite files and, when configured, a real
// PostgreSQL. This file holds the harness; the *_test.go files next to it
// hold the scenarios.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/internal/testtool"
)

// micaBin is the binary under test, built by TestMain.
var micaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mica-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	micaBin = filepath.Join(dir, "mica")
	build := exec.Command("go", "build", "-o", micaBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building mica: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	fmt.Fprint(os.Stderr, testtool.Summary())
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one finished mica run.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("mica %s → exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// ca is one data directory under test, with the secrets that must never
// show up in any output of any command run against it.
type tca struct {
	t       *testing.T
	dir     string
	env     []string // extra environment
	secrets []string // values that must never appear in output
	pinRE   []*regexp.Regexp
}

// newSecret returns a distinctive passphrase, so a grep for it cannot
// match by accident.
func newSecret(t *testing.T) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "pp-" + hex.EncodeToString(b[:])
}

// writeSecret stores a secret the way operators should: a 0600 file.
func writeSecret(t *testing.T, dir, name, secret string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newSoftCA initialises a softkms + SQLite CA and returns it.
func newSoftCA(t *testing.T, extra ...string) *tca {
	t.Helper()
	c := &tca{t: t, dir: filepath.Join(t.TempDir(), "data")}
	secret := newSecret(t)
	c.secrets = append(c.secrets, secret)
	sf := writeSecret(t, t.TempDir(), "passphrase", secret)
	args := append([]string{"init", "--data", c.dir, "--secret-file", sf}, extra...)
	c.must(args...)
	return c
}

// run executes mica with args and the CA's environment, and checks that no
// secret leaked into its output whatever the outcome.
func (c *tca) run(args ...string) result {
	c.t.Helper()
	return c.runEnv(nil, args...)
}

func (c *tca) runEnv(env []string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, micaBin, args...)
	cmd.Env = append(baseEnv(), c.env...)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			c.t.Fatalf("running mica %v: %v", args, err)
		}
		r.code = ee.ExitCode()
	}
	c.checkNoSecrets(r.stdout + r.stderr)
	return r
}

// baseEnv is the test process's environment minus variables that would
// change mica's behaviour behind a test's back.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MICA_TEST_CRASH_AT=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (c *tca) checkNoSecrets(out string) {
	c.t.Helper()
	for _, s := range c.secrets {
		if s != "" && strings.Contains(out, s) {
			c.t.Errorf("a secret appeared in mica's output:\n%s", out)
		}
	}
	for _, re := range c.pinRE {
		if re.MatchString(out) {
			c.t.Errorf("the PIN appeared in mica's output:\n%s", out)
		}
	}
}

// must runs mica and fails the test unless it exits 0.
func (c *tca) must(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("%v", r)
	}
	return r
}

// with appends --data DIR to args.
func (c *tca) data(args ...string) []string { return append(args, "--data", c.dir) }

// csrOpts describe an openssl-made CSR.
type csrOpts struct {
	cn      string
	san     string   // subjectAltName value, e.g. "DNS:a.test"
	newkey  []string // openssl -newkey and -pkeyopt arguments
	outform string   // PEM (default) or DER
}

// openssl runs openssl and fails the test on error.
func openssl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makeCSR makes a CSR with openssl req, as the issue asks: a real client's
// request, not one built by the code under test.
func makeCSR(t *testing.T, o csrOpts) string {
	t.Helper()
	if o.cn == "" {
		o.cn = "a.test"
	}
	if o.san == "" {
		o.san = "DNS:" + o.cn
	}
	if o.newkey == nil {
		o.newkey = []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"}
	}
	if o.outform == "" {
		o.outform = "PEM"
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "req."+strings.ToLower(o.outform))
	args := append([]string{"req", "-new"}, o.newkey...)
	args = append(args, "-nodes", "-keyout", filepath.Join(dir, "key.pem"), "-subj", "/CN="+o.cn,
		"-addext", "subjectAltName="+o.san, "-outform", o.outform, "-out", out)
	openssl(t, args...)
	return out
}

// certView mirrors `mica cert list --json` rows (the fields tests use).
type listedCert struct {
	Serial   string   `json:"serial"`
	IssuerID string   `json:"issuer_id"`
	State    string   `json:"state"`
	Profile  string   `json:"profile"`
	SANs     []string `json:"sans"`
	Subject  string   `json:"subject"`
}

// list returns `mica cert list --json` with extra filter flags.
func (c *tca) list(filter ...string) []listedCert {
	c.t.Helper()
	r := c.must(c.data(append([]string{"cert", "list", "--json", "--limit", "1000"}, filter...)...)...)
	var out []listedCert
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		c.t.Fatalf("cert list --json: %v\n%s", err, r.stdout)
	}
	return out
}

// readCerts parses every CERTIFICATE block of a PEM file.
func readCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseCerts(t, b)
}

func parseCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("parsing certificate: %v", err)
		}
		out = append(out, c)
	}
}

// openSerial is a certificate serial as `openssl x509 -serial` prints it.
func opensslSerial(t *testing.T, certFile string) string {
	t.Helper()
	out := strings.TrimSpace(openssl(t, "x509", "-in", certFile, "-noout", "-serial"))
	return strings.TrimPrefix(out, "serial=")
}

// requireTool skips a test whose external tool is missing, except where
// the tools must be present (CI, scripts/test.sh): skipping there would
// let a run pass without testing anything. The rule is testtool's.
func requireTool(t *testing.T, name string) {
	t.Helper()
	testtool.Need(t, name)
}

// wantExit fails unless r exited with code and stderr names every want.
func wantExit(t *testing.T, r result, code int, wants ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\n%v", r.code, code, r)
		return
	}
	for _, w := range wants {
		if !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(w)) {
			t.Errorf("stderr does not mention %q\n%v", w, r)
		}
	}
	if code != 0 && !strings.HasPrefix(r.stderr, "mica: ") && !strings.Contains(r.stderr, "\nmica: ") {
		t.Errorf("error output does not start with \"mica: \"\n%v", r)
	}
}
