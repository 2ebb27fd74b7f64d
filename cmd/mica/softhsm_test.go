package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mica-pki/mica/hsm/hsmtest"
)

// p11Object is one object as pkcs11-tool --list-objects prints it.
type p11Object struct {
	kind   string // "Private Key Object; EC"
	label  string
	access []string // "sensitive", "always sensitive", "never extractable", "local"
}

// listObjects asks the vendor tool, not mica, what is on the token.
func listObjects(t *testing.T, module, label, pin string) []p11Object {
	t.Helper()
	out, err := exec.Command("pkcs11-tool", "--module", module, "--token-label", label,
		"--login", "--pin", pin, "--list-objects").CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool --list-objects: %v\n%s", err, out)
	}
	var objs []p11Object
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case line == "":
		case !strings.HasPrefix(line, " "):
			objs = append(objs, p11Object{kind: strings.TrimSpace(line)})
		case len(objs) > 0:
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			v = strings.TrimSpace(v)
			switch k {
			case "label":
				objs[len(objs)-1].label = v
			case "Access":
				objs[len(objs)-1].access = strings.Split(v, ", ")
			}
		}
	}
	return objs
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestSoftHSM initialises the CA on a real SoftHSM2 token and checks, with
// pkcs11-tool, that both CA private keys are sensitive and were never
// extractable, that `mica hsm keys` and `mica ca show` report the same
// (read from the token), that issuance works with the token keys, and that
// a wrong PIN is refused by name. The PIN never appears in any output.
//
// Not parallel: SOFTHSM2_CONF is process-wide (t.Setenv), and the mica
// processes inherit it.
func TestSoftHSM(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping SoftHSM2")
	}
	uri, defaultPIN := hsmtest.SoftHSM(t)
	requireTool(t, "pkcs11-tool")
	requireTool(t, "openssl")
	module, err := hsmtest.Module()
	if err != nil {
		t.Fatal(err)
	}
	// A distinctive PIN, so "never in the output" is a meaningful grep.
	pin := newSecret(t)
	if out, err := exec.Command("pkcs11-tool", "--module", module, "--token-label", hsmtest.TokenLabel, "--login",
		"--pin", string(defaultPIN.Bytes()), "--change-pin", "--new-pin", pin).CombinedOutput(); err != nil {
		t.Fatalf("pkcs11-tool --change-pin: %v\n%s", err, out)
	}
	c := &tca{t: t, dir: filepath.Join(t.TempDir(), "data"), secrets: []string{pin}}
	pinFile := writeSecret(t, t.TempDir(), "pin", pin)
	c.must("init", "--data", c.dir, "--backend", uri, "--secret-file", pinFile,
		"--root-id", "root", "--issuing-id", "issuing", "--root-key-type", "EC-P384", "--issuing-key-type", "EC-P256")

	objs := listObjects(t, module, hsmtest.TokenLabel, pin)
	found := map[string]bool{}
	for _, o := range objs {
		if !strings.HasPrefix(o.kind, "Private Key Object") {
			continue
		}
		found[o.label] = true
		if !has(o.access, "sensitive") || !has(o.access, "never extractable") || has(o.access, "extractable") {
			t.Errorf("private key %q access = %q, want sensitive and never extractable", o.label, o.access)
		}
	}
	if !found["root"] || !found["issuing"] {
		t.Errorf("pkcs11-tool lists private keys %v, want root and issuing\n%+v", found, objs)
	}

	want := "sensitive=true extractable=false always-sensitive=true never-extractable=true"
	keys := c.must(c.data("hsm", "keys")...).stdout
	for _, label := range []string{"root", "issuing"} {
		re := regexp.MustCompile(`(?m)^` + label + `\s.*on-token=true ` + regexp.QuoteMeta(want))
		if !re.MatchString(keys) {
			t.Errorf("mica hsm keys does not show %s as %s:\n%s", label, want, keys)
		}
	}
	show := c.must(c.data("ca", "show")...).stdout
	if n := strings.Count(show, "Protection:  pkcs11: on-token=true "+want); n != 2 {
		t.Errorf("mica ca show reports %d keys as %q, want 2:\n%s", n, want, show)
	}
	if !strings.Contains(show, "Key URI:     pkcs11:") {
		t.Errorf("mica ca show lacks the pkcs11 key URIs:\n%s", show)
	}

	// Issuance with the token's issuing key.
	leaf := filepath.Join(t.TempDir(), "leaf.pem")
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "hsm.test"}), "--profile", "server", "--out", leaf)...)
	out := openssl(t, "verify", "-CAfile", filepath.Join(c.dir, rootPEM), "-untrusted", filepath.Join(c.dir, issuingPEM), leaf)
	if !strings.Contains(out, "OK") {
		t.Errorf("openssl verify: %s", out)
	}

	// A wrong PIN is named as such, exits 4, issues nothing.
	wrong := newSecret(t)
	c.secrets = append(c.secrets, wrong)
	yaml, _ := os.ReadFile(filepath.Join(c.dir, "mica.yaml"))
	wrongYAML := regexp.MustCompile(`(?m)^(\s*secret_file:).*$`).ReplaceAllString(string(yaml), "${1} "+writeSecret(t, t.TempDir(), "wrong", wrong))
	wrongCfg := writeFile(t, "wrong.yaml", []byte("data_dir: "+c.dir+"\n"+wrongYAML))
	r := c.run("cert", "issue", "--config", wrongCfg, "--csr", makeCSR(t, csrOpts{cn: "wrongpin.test"}), "--profile", "server")
	wantExit(t, r, exitUnavailable, "wrong PIN")
	if got := c.list("-q", "wrongpin.test"); len(got) != 0 {
		t.Errorf("a wrong PIN left %+v in the inventory", got)
	}
}
