package main

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// In-process tests of the CLI's own logic; the acceptance tests in the
// other files cover the same paths through the real binary.

func TestCheckArgvSecrets(t *testing.T) {
	t.Parallel()
	refused := [][]string{
		{"mica", "init", "--pin", "1234"},
		{"mica", "init", "-pin=1234"},
		{"mica", "init", "--PassPhrase", "x"},
		{"mica", "init", "--so-pin=1"},
		{"mica", "init", "--backend", "pkcs11:token=a?pin-value=1"},
	}
	for _, argv := range refused {
		if err := checkArgvSecrets(argv); err == nil {
			t.Errorf("checkArgvSecrets(%q) = nil, want refusal", argv)
		}
	}
	allowed := [][]string{
		{"mica", "init", "--secret-file", "/etc/mica/pin"},
		{"mica", "init", "--backend", "pkcs11:token=a?pin-source=/etc/pin"},
		{"mica", "cert", "list", "-q", "spinner.test"},
	}
	for _, argv := range allowed {
		if err := checkArgvSecrets(argv); err != nil {
			t.Errorf("checkArgvSecrets(%q) = %v, want nil", argv, err)
		}
	}
	if err := checkSecretNotInArgv([]string{"mica", "--org", "s3cret"}, []byte("s3cret")); err == nil {
		t.Error("a loaded secret typed as an argument was not refused")
	}
	if err := checkSecretNotInArgv([]string{"mica", "--org=s3cret"}, []byte("s3cret")); err == nil {
		t.Error("a loaded secret typed as --flag=secret was not refused")
	}
	if err := checkSecretNotInArgv([]string{"mica", "--lifetime", "1234h"}, []byte("1234")); err != nil {
		t.Errorf("a substring match was refused: %v", err)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		code int
		msg  string
	}{
		{ca.Errorf(ca.ErrPolicy, "name evil.test is not allowed"), exitRefused, "name evil.test is not allowed"},
		{ca.Errorf(ca.ErrBadCSR, "bad"), exitRefused, "bad"},
		{ca.Errorf(ca.ErrWeakKey, "RSA-1024"), exitRefused, "RSA-1024"},
		{ca.Errorf(ca.ErrLifetime, "too long"), exitRefused, "too long"},
		{ca.Errorf(ca.ErrUnknownProfile, "nope"), exitRefused, "nope"},
		{ca.Errorf(ca.ErrAlreadyRevoked, "again"), exitRefused, "again"},
		{ca.Errorf(ca.ErrNotFound, "gone"), exitNotFound, "gone"},
		{ca.Errorf(ca.ErrConfig, "bad profile"), exitConfig, "bad profile"},
		{ca.Wrap(ca.ErrUnavailable, fmt.Errorf("decrypt: %w", hsm.ErrWrongPIN), "key cannot be opened"), exitUnavailable, "key cannot be opened: wrong PIN or passphrase"},
		{ca.Wrap(ca.ErrInternal, errors.New("secret internals"), "internal error"), exitInternal, "internal error"},
		{fmt.Errorf("open: %w", hsm.ErrWrongPIN), exitUnavailable, "wrong PIN or passphrase for the key backend"},
		{fmt.Errorf("x: %w", inventory.ErrNotFound), exitNotFound, "x: inventory: not found"},
		{usageErrorf("bad flag"), exitUsage, "bad flag"},
		{&cliError{code: exitUnavailable, msg: "db down", err: errors.New("detail")}, exitUnavailable, "db down"},
		{errors.New("boom"), exitInternal, "boom"},
	}
	for _, tt := range tests {
		code, msg := classify(tt.err)
		if code != tt.code || msg != tt.msg {
			t.Errorf("classify(%v) = %d %q, want %d %q", tt.err, code, msg, tt.code, tt.msg)
		}
	}
}

func TestReportDebug(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: &out}
	err := ca.Wrap(ca.ErrUnavailable, errors.New("cause detail"), "CA unavailable now")
	if code := report(e, err, false); code != exitUnavailable || out.String() != "mica: CA unavailable now\n" {
		t.Errorf("report = %d %q", code, out.String())
	}
	out.Reset()
	report(e, err, true)
	if !bytes.Contains(out.Bytes(), []byte("mica: detail: ")) || !bytes.Contains(out.Bytes(), []byte("cause detail")) {
		t.Errorf("report with debug = %q, want the detail line", out.String())
	}
}

func TestInterleavedFlags(t *testing.T) {
	t.Parallel()
	c := newFlags(&env{}, "cert show", "SERIAL")
	pem := c.fs.Bool("pem", false, "")
	pos, err := c.parse([]string{"0A:1B", "--pem", "--data", "/x"})
	if err != nil || len(pos) != 1 || pos[0] != "0A:1B" || !*pem || c.data != "/x" {
		t.Errorf("parse = %v %v pem=%t data=%q", pos, err, *pem, c.data)
	}
	if _, err := newFlags(&env{}, "x", "").parse([]string{"--nope"}); err == nil {
		t.Error("unknown flag accepted")
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]string{"cert issue": "cert issue", "ca root": "ca root", "init": "init", "version": "version"} {
		cmd, _, ok := lookup(splitArgs(args))
		if !ok || cmd.name != want {
			t.Errorf("lookup(%q) = %q %t", args, cmd.name, ok)
		}
	}
	for _, bad := range []string{"cert", "ca frob", "help", "certs list"} {
		if _, _, ok := lookup(splitArgs(bad)); ok {
			t.Errorf("lookup(%q) found a command", bad)
		}
	}
}

func splitArgs(s string) []string {
	var out []string
	for _, f := range bytes.Fields([]byte(s)) {
		out = append(out, string(f))
	}
	return out
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	if got := colonHex("a1b2c"); got != "0A:1B:2C" {
		t.Errorf("colonHex = %q", got)
	}
	if got := displaySerial("180573"); got != "180573" {
		t.Errorf("displaySerial even = %q", got)
	}
	if got := displaySerial("1a0573f"); got != "01A0573F" {
		t.Errorf("displaySerial odd = %q", got)
	}
	if got := fingerprint([]byte("x")); len(got) != 95 {
		t.Errorf("fingerprint length %d, want 95 (32 bytes with colons)", len(got))
	}
}

func TestActiveChain(t *testing.T) {
	t.Parallel()
	now := time.Now()
	issuers := []inventory.Issuer{
		{ID: "root", IsRoot: true, Status: "active"},
		{ID: "old", ParentID: "root", Status: "retired", KeyURI: "k1", NotBefore: now.Add(-48 * time.Hour)},
		{ID: "iss-a", ParentID: "root", Status: "active", KeyURI: "k2", NotBefore: now.Add(-24 * time.Hour)},
		{ID: "iss-b", ParentID: "root", Status: "active", KeyURI: "k3", NotBefore: now},
		{ID: "offline-int", ParentID: "root", Status: "active", NotBefore: now.Add(time.Hour)},
	}
	chain, others := activeChain(issuers)
	if len(chain) != 2 || chain[0].ID != "iss-b" || chain[1].ID != "root" {
		t.Errorf("chain = %v, want iss-b, root", chain)
	}
	if len(others) != 3 {
		t.Errorf("others = %v, want 3", others)
	}
}
