package main

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// eventHashes reads every audit event of the SQLite store in dir, by ID.
func eventHashes(t *testing.T, dir string) map[int64]string {
	t.Helper()
	return eventHashesDSN(t, "sqlite:"+filepath.Join(dir, "mica.db"))
}

// eventHashesDSN reads every audit event of the store at dsn, by ID.
func eventHashesDSN(t *testing.T, dsn string) map[int64]string {
	t.Helper()
	ctx := context.Background()
	st, err := inventory.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := map[int64]string{}
	var before int64
	for {
		evs, err := st.Events(ctx, inventory.EventFilter{Before: before, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			out[ev.ID] = ev.Hash
			before = ev.ID
		}
		if len(evs) < 1000 {
			return out
		}
	}
}

// sameEvents checks that every event of want is in got, unchanged.
func sameEvents(t *testing.T, what string, want, got map[int64]string) {
	t.Helper()
	for id, h := range want {
		if got[id] != h {
			t.Errorf("%s: event %d = %q, want %q", what, id, got[id], h)
		}
	}
}

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
	eventsBefore := eventHashes(t, c.dir)

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
	sameEvents(t, "restored store", eventsBefore, eventHashes(t, restored.dir))
	keysAfter := restored.keys()
	for id, k := range keysBefore {
		if ka := keysAfter[id]; ka.Status != k.Status || string(ka.PublicKey) != string(k.PublicKey) {
			t.Errorf("key %s: restored %+v, want %+v", id, ka, k)
		}
	}
	restored.must(restored.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "d.test"}), "--profile", "server")...)
}

// TestBackupRoundTripSoftHSM: a CA whose keys are on a real SoftHSM2
// token is backed up (the keys by reference), its data directory wiped,
// the backup verified (issuance and OCSP with the re-bound token keys)
// and restored: every certificate, event and key binding comes back and
// issuance works; a corrupted byte fails verify.
//
// Not parallel: SOFTHSM2_CONF is process-wide.
func TestBackupRoundTripSoftHSM(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping SoftHSM2")
	}
	uri, pin := hsmtest.SoftHSM(t)
	c := &tca{t: t, dir: filepath.Join(t.TempDir(), "data")}
	pinFile := writeSecret(t, t.TempDir(), "pin", string(pin.Bytes()))
	c.must("init", "--data", c.dir, "--backend", uri, "--secret-file", pinFile, "--root-id", "root", "--issuing-id", "issuing")
	for _, cn := range []string{"h1.test", "h2.test"} {
		c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: cn}), "--profile", "server")...)
	}
	c.must(c.data("ca", "rotate", "--id", "issuing-2")...)
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "h3.test"}), "--profile", "server")...)
	before, keysBefore, eventsBefore := c.list(), c.keys(), eventHashes(t, c.dir)

	tmp := t.TempDir()
	pass := writeSecret(t, tmp, "bp", "a long backup passphrase")
	b := filepath.Join(tmp, "hsm.age")
	if out := c.must(c.data("backup", "create", "--out", b, "--passphrase-file", pass)...).stdout; !strings.Contains(out, "3 HSM keys by reference") {
		t.Errorf("backup create of an HSM CA: %s", out)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		t.Fatal(err)
	}
	r := c.must("backup", "verify", b, "--passphrase-file", pass)
	for _, want := range []string{"certificate signatures verified", "audit hash chain intact", "test issuance by issuing-2", "OCSP response signed", "recovery took"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("backup verify lacks %q:\n%s", want, r.stdout)
		}
	}
	bad, _ := os.ReadFile(b)
	bad[len(bad)-10] ^= 0x80
	tampered := filepath.Join(tmp, "tampered.age")
	if err := os.WriteFile(tampered, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	wantExit(t, c.run("backup", "verify", tampered, "--passphrase-file", pass), exitRefused, "damaged")

	restored := &tca{t: t, dir: filepath.Join(tmp, "restored")}
	restored.must("restore", b, "--data", restored.dir, "--passphrase-file", pass)
	after := restored.list()
	if len(after) != len(before) {
		t.Fatalf("restored %d certificates, want %d", len(after), len(before))
	}
	for i := range before {
		if after[i].Serial != before[i].Serial || after[i].State != before[i].State {
			t.Errorf("certificate %d: restored %+v, want %+v", i, after[i], before[i])
		}
	}
	sameEvents(t, "restored store", eventsBefore, eventHashes(t, restored.dir))
	keysAfter := restored.keys()
	for id, k := range keysBefore {
		if ka := keysAfter[id]; ka.Status != k.Status || ka.URI != k.URI || string(ka.PublicKey) != string(k.PublicKey) {
			t.Errorf("key %s: restored %+v, want %+v", id, ka, k)
		}
	}
	leaf := filepath.Join(tmp, "after.pem")
	restored.must(restored.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "h4.test"}), "--profile", "server", "--out", leaf)...)
	if chain := readCerts(t, leaf); len(chain) < 2 || chain[0].CheckSignatureFrom(chain[1]) != nil || !strings.Contains(chain[1].Subject.CommonName, "Issuing CA") {
		t.Errorf("issuance after restore: chain %v", chain)
	}
}

// TestBackupRoundTripPostgres: the same drill with the inventory on
// PostgreSQL: the backup carries a pg_dump of one snapshot; the schema is
// dropped and the data directory wiped; verify restores into a scratch
// database (created and dropped); restore loads the dump back and every
// certificate, event and key comes back and issuance works.
func TestBackupRoundTripPostgres(t *testing.T) {
	t.Parallel()
	requireTool(t, "pg_dump")
	dsn := inventorytest.PostgresDSN(t)
	c := newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing", "--database", dsn)
	for _, cn := range []string{"p1.test", "p2.test", "p3.test"} {
		c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: cn}), "--profile", "server")...)
	}
	before, keysBefore, eventsBefore := c.list(), c.keys(), eventHashesDSN(t, dsn)

	tmp := t.TempDir()
	pass := writeSecret(t, tmp, "bp", "correct horse battery staple")
	b := filepath.Join(tmp, "pg.age")
	if out := c.must(c.data("backup", "create", "--out", b, "--passphrase-file", pass)...).stdout; !strings.Contains(out, "3 certificates") {
		t.Errorf("backup create on PostgreSQL: %s", out)
	}
	// The disaster: the schema and the data directory are gone.
	u, _ := url.Parse(dsn)
	schema := u.Query().Get("search_path")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.RemoveAll(c.dir); err != nil {
		t.Fatal(err)
	}

	r := c.must("backup", "verify", b, "--passphrase-file", pass)
	for _, want := range []string{"restored into a scratch database", "row counts match", "certificate signatures verified", "audit hash chain intact", "test issuance", "OCSP response signed", "recovery took"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("backup verify lacks %q:\n%s", want, r.stdout)
		}
	}
	bad, _ := os.ReadFile(b)
	bad[len(bad)/3] ^= 0x04
	tampered := filepath.Join(tmp, "tampered.age")
	if err := os.WriteFile(tampered, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	wantExit(t, c.run("backup", "verify", tampered, "--passphrase-file", pass), exitRefused, "damaged")

	restored := &tca{t: t, dir: filepath.Join(tmp, "restored"), secrets: c.secrets}
	wantExit(t, restored.run("restore", b, "--data", restored.dir, "--passphrase-file", pass), exitUsage, "--database")
	restored.must("restore", b, "--data", filepath.Join(tmp, "restored"), "--passphrase-file", pass, "--database", dsn)
	wantExit(t, restored.run("restore", b, "--data", filepath.Join(tmp, "again"), "--passphrase-file", pass, "--database", dsn), exitUsage, "never overwrites")
	after := restored.list()
	if len(after) != len(before) {
		t.Fatalf("restored %d certificates, want %d", len(after), len(before))
	}
	for i := range before {
		if after[i].Serial != before[i].Serial || after[i].State != before[i].State {
			t.Errorf("certificate %d: restored %+v, want %+v", i, after[i], before[i])
		}
	}
	sameEvents(t, "restored PostgreSQL store", eventsBefore, eventHashesDSN(t, dsn))
	keysAfter := restored.keys()
	for id, k := range keysBefore {
		if ka := keysAfter[id]; ka.Status != k.Status || string(ka.PublicKey) != string(k.PublicKey) {
			t.Errorf("key %s: restored %+v, want %+v", id, ka, k)
		}
	}
	restored.must(restored.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "p4.test"}), "--profile", "server")...)
}
