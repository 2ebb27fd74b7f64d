package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory/inventorytest"
)

// scratchDatabase creates an empty database with a unique name on the
// test server (other engineers' tests share it) and returns a DSN for it
// without search_path, so the store lives in "public" as it does in a
// plain installation. The database is dropped at cleanup.
func scratchDatabase(t *testing.T, prefix string) (dsn string, drop func()) {
	t.Helper()
	base := inventorytest.PostgresDSN(t) // skips without MICA_TEST_POSTGRES_DSN
	u, _ := url.Parse(base)
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	admin, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := prefix + hex.EncodeToString(rnd[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	dropped := false
	drop = func() {
		if dropped {
			return
		}
		dropped = true
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop scratch database %s: %v", name, err)
		}
	}
	t.Cleanup(func() { drop(); admin.Close() })
	d := *u
	d.Path = "/" + name
	return d.String(), drop
}

// TestBackupPublicSchemaPostgres: a store in the default "public" schema
// of its own database (pg_trgm installed there by the migration) is backed
// up, verified into a scratch database and restored into a fresh database
// after the original is gone. pg_dump --schema leaves the extension out;
// the restore must bring it, or the GIN indexes on gin_trgm_ops fail.
func TestBackupPublicSchemaPostgres(t *testing.T) {
	t.Parallel()
	requireTool(t, "pg_dump")
	dsn, drop := scratchDatabase(t, "mica_crash_src_")
	c := newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing", "--database", dsn)
	for _, cn := range []string{"pub1.test", "pub2.test"} {
		c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: cn}), "--profile", "server")...)
	}
	before := c.list()
	tmp := t.TempDir()
	pass := writeSecret(t, tmp, "bp", "correct horse battery staple")
	b := filepath.Join(tmp, "pub.age")
	c.must(c.data("backup", "create", "--out", b, "--passphrase-file", pass)...)

	r := c.must("backup", "verify", b, "--passphrase-file", pass)
	for _, want := range []string{"restored into a scratch database", "row counts match", "audit hash chain intact"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("backup verify lacks %q:\n%s", want, r.stdout)
		}
	}
	// The disaster: the database is gone; restore into a fresh one.
	drop()
	fresh, _ := scratchDatabase(t, "mica_crash_dst_")
	restored := &tca{t: t, dir: filepath.Join(tmp, "restored"), secrets: c.secrets}
	restored.must("restore", b, "--data", restored.dir, "--passphrase-file", pass, "--database", fresh)
	after := restored.list()
	if len(after) != len(before) {
		t.Fatalf("restored %d certificates, want %d", len(after), len(before))
	}
	// Search (the pg_trgm indexes) and issuance work on the restored store.
	if got := restored.list("-q", "pub1"); len(got) != 1 {
		t.Errorf("search on the restored store found %d certificates, want 1", len(got))
	}
	restored.must(restored.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "pub3.test"}), "--profile", "server")...)
}
