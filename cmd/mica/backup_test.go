package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// TestBackupRoundTrip: back up a populated CA to an age X25519 recipient
// and to a passphrase, wipe the original, verify (scratch restore with
// signatures, audit chain, issuance and OCSP), restore for real and issue
// from the restored directory; a backup with one flipped byte is refused.
func TestBackupRoundTrip(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing")
	for _, cn := range []string{"a.test", "b.test", "c.test"} {
		c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: cn}), "--profile", "server")...)
	}
	before := c.list()
	keysBefore := c.keys()

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	idFile := writeFile(t, "id.txt", []byte(id.String()+"\n"))
	c.secrets = append(c.secrets, id.String())
	passFile := writeSecret(t, tmp, "backup-pass", "correct horse battery staple")
	x := filepath.Join(tmp, "x.age")
	p := filepath.Join(tmp, "p.age")
	c.must(c.data("backup", "create", "--out", x, "--recipient", id.Recipient().String())...)
	c.must(c.data("backup", "create", "--out", p, "--passphrase-file", passFile)...)

	// The original is gone; the secret file (outside the data dir) stays.
	if err := os.RemoveAll(c.dir); err != nil {
		t.Fatal(err)
	}
	r := c.must("backup", "verify", x, "--identity", idFile)
	for _, want := range []string{"audit hash chain intact", "certificate signatures verified", "test issuance", "OCSP response signed", "recovery took"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("backup verify output lacks %q:\n%s", want, r.stdout)
		}
	}
	c.must("backup", "verify", p, "--passphrase-file", passFile)
	wantExit(t, c.run("backup", "verify", x, "--passphrase-file", passFile), exitRefused, "cannot decrypt")

	bad, _ := os.ReadFile(x)
	bad[len(bad)/2] ^= 0x01
	tampered := filepath.Join(tmp, "tampered.age")
	if err := os.WriteFile(tampered, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	wantExit(t, c.run("backup", "verify", tampered, "--identity", idFile), exitRefused, "damaged")

	restored := &tca{t: t, dir: filepath.Join(tmp, "restored"), secrets: c.secrets}
	restored.must("restore", x, "--data", restored.dir, "--identity", idFile)
	wantExit(t, restored.run("restore", x, "--data", restored.dir, "--identity", idFile), exitUsage, "not empty")
	after := restored.list()
	if len(after) != len(before) {
		t.Fatalf("restored %d certificates, want %d", len(after), len(before))
	}
	for i := range before {
		if after[i].Serial != before[i].Serial || after[i].State != before[i].State {
			t.Errorf("certificate %d: restored %+v, want %+v", i, after[i], before[i])
		}
	}
	keysAfter := restored.keys()
	for id, k := range keysBefore {
		if ka := keysAfter[id]; ka.Status != k.Status || string(ka.PublicKey) != string(k.PublicKey) {
			t.Errorf("key %s: restored %+v, want %+v", id, ka, k)
		}
	}
	restored.must(restored.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "d.test"}), "--profile", "server")...)
}
