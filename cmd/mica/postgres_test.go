package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestPostgres runs the core CLI flow against PostgreSQL (a fresh schema
// selected by search_path) when MICA_TEST_POSTGRES_DSN is set.
func TestPostgres(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	dsn := inventorytest.PostgresDSN(t) // skips without MICA_TEST_POSTGRES_DSN
	c := newSoftCA(t, "--database", dsn)
	if yaml, _ := os.ReadFile(filepath.Join(c.dir, "mica.yaml")); !strings.Contains(string(yaml), "database: postgres") {
		t.Errorf("mica.yaml does not name the PostgreSQL DSN:\n%s", yaml)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "mica.db")); err == nil {
		t.Error("a SQLite file was created although the DSN is PostgreSQL")
	}

	leaf := filepath.Join(t.TempDir(), "leaf.pem")
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "pg.test"}), "--profile", "server", "--out", leaf)...)
	out := openssl(t, "verify", "-CAfile", filepath.Join(c.dir, rootPEM), "-untrusted", filepath.Join(c.dir, issuingPEM), leaf)
	if !strings.Contains(out, "OK") {
		t.Errorf("openssl verify: %s", out)
	}
	serial := opensslSerial(t, leaf)
	if got := c.list(); len(got) != 1 || got[0].Serial != serial || got[0].State != "issued" {
		t.Errorf("cert list on PostgreSQL = %+v, want %s issued", got, serial)
	}
	c.must(c.data("cert", "revoke", strings.ToLower(serial), "--reason", "superseded")...)
	if got := c.list("--state", "revoked"); len(got) != 1 {
		t.Errorf("after revoke, cert list --state revoked = %+v", got)
	}

	// A second data directory pointing at the same database cannot
	// initialise a second hierarchy under the same IDs.
	other := &tca{t: t, dir: filepath.Join(t.TempDir(), "replica")}
	sf := writeSecret(t, t.TempDir(), "p", newSecret(t))
	r := other.run("init", "--data", other.dir, "--secret-file", sf, "--database", dsn)
	wantExit(t, r, exitConfig, "already exists")
}
