package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOfflineRoot: with --offline-root the root key is created in its own
// backend (DIR/offline-root for softkms), the store records no online root
// key, init tells the operator what to do and leaves README.txt with the
// key, and issuance keeps working after the root directory is moved away.
func TestOfflineRoot(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	c := newSoftCA(t, "--offline-root", "--root-id", "root", "--issuing-id", "issuing")
	offline := filepath.Join(c.dir, offlineDir)

	readme, err := os.ReadFile(filepath.Join(offline, offlineREADME))
	if err != nil {
		t.Fatalf("init did not write the offline README: %v", err)
	}
	for _, want := range []string{"OFFLINE ROOT", "root", "offline storage", "SIGNING A NEW INTERMEDIATE", "sign-intermediate", "softkms:"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.txt lacks %q:\n%s", want, readme)
		}
	}
	if _, err := os.Stat(filepath.Join(offline, "root.key")); err != nil {
		t.Errorf("root key not in %s: %v", offline, err)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "keys", "root.key")); err == nil {
		t.Error("the root key is also in the online key directory")
	}
	if got, want := readCerts(t, filepath.Join(offline, rootPEM))[0].Raw, readCerts(t, filepath.Join(c.dir, rootPEM))[0].Raw; string(got) != string(want) {
		t.Error("offline-root/root.pem differs from root.pem")
	}

	show := c.must(c.data("ca", "show")...).stdout
	if !strings.Contains(show, "root CA root") || !strings.Contains(show, "Key:         offline") {
		t.Errorf("ca show does not report the root key offline:\n%s", show)
	}
	keys := c.must(c.data("hsm", "keys")...).stdout
	if strings.Contains(keys, "\nroot ") || !strings.Contains(keys, "issuing") {
		t.Errorf("hsm keys (online backend):\n%s", keys)
	}
	if rk := c.must(c.data("hsm", "keys", "--root")...).stdout; !strings.Contains(rk, "root") {
		t.Errorf("hsm keys --root:\n%s", rk)
	}

	// The operator moves the root away; the online CA does not notice.
	if err := os.Rename(offline, filepath.Join(t.TempDir(), "safe")); err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Join(t.TempDir(), "leaf.pem")
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "a.test"}), "--profile", "server", "--out", leaf)...)
	out := openssl(t, "verify", "-CAfile", filepath.Join(c.dir, rootPEM), "-untrusted", filepath.Join(c.dir, issuingPEM), leaf)
	if !strings.Contains(out, "OK") {
		t.Errorf("openssl verify: %s", out)
	}
	c.must(c.data("ca", "show")...)
	if r := c.must(c.data("ca", "root")...); parseCerts(t, []byte(r.stdout))[0].Subject.String() == "" {
		t.Errorf("ca root: %v", r)
	}
}

func TestOfflineRootNeedsRootBackendForPKCS11(t *testing.T) {
	t.Parallel()
	c := &tca{t: t, dir: filepath.Join(t.TempDir(), "data")}
	sf := writeSecret(t, t.TempDir(), "pin", newSecret(t))
	r := c.run("init", "--data", c.dir, "--secret-file", sf, "--offline-root",
		"--backend", "pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=mica")
	wantExit(t, r, exitUsage, "--root-backend")
	if _, err := os.Stat(filepath.Join(c.dir, "mica.yaml")); err == nil {
		t.Error("a refused init wrote mica.yaml")
	}
}
