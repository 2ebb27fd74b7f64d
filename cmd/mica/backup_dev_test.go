package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupVerifyDevDirectory: the recovery drill on a fresh `mica dev`
// data directory, whose configuration names its passphrase relatively
// (secret_file: passphrase). The drill restores into a scratch directory
// and must still find the passphrase next to the original configuration,
// not in the scratch directory.
func TestBackupVerifyDevDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, dir)
	if err := d.stop(t); err != nil {
		t.Fatalf("mica dev stop: %v", err)
	}
	c := &tca{t: t, dir: dir}
	tmp := t.TempDir()
	pass := writeSecret(t, tmp, "bp", "correct horse battery staple")
	b := filepath.Join(tmp, "dev.age")
	c.must(c.data("backup", "create", "--out", b, "--passphrase-file", pass)...)
	r := c.must("backup", "verify", b, "--passphrase-file", pass)
	for _, want := range []string{"test issuance", "OCSP response signed", "recovery took"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("backup verify on a mica dev directory lacks %q:\n%s", want, r.stdout)
		}
	}
}
