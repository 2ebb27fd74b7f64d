// Package inventorytest gives tests real inventory stores: a fresh SQLite
// file per test, always, and a fresh PostgreSQL schema per test when
// MICA_TEST_POSTGRES_DSN is set (for example
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
//
// Use Stores to run a test body against every available backend:
//
//	for name, st := range inventorytest.Stores(t) {
//		t.Run(name, func(t *testing.T) { … st … })
//	}
//
// Everything created is removed by t.Cleanup.
package inventorytest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx" for schema setup

	"github.com/mica-pki/mica/internal/testtool"
	"github.com/mica-pki/mica/inventory"
)

// EnvPostgresDSN names the environment variable holding the PostgreSQL
// server used by tests. Unset means "SQLite only".
const EnvPostgresDSN = "MICA_TEST_POSTGRES_DSN"

// Stores returns one migrated, empty store per available backend, keyed
// "sqlite" and (when MICA_TEST_POSTGRES_DSN is set) "postgres".
func Stores(t testing.TB) map[string]*inventory.Store {
	t.Helper()
	m := map[string]*inventory.Store{"sqlite": SQLite(t)}
	if os.Getenv(EnvPostgresDSN) != "" {
		m["postgres"] = Postgres(t)
	} else {
		// Not silent: the PostgreSQL half of the suite did not run.
		testtool.Partial(t, testtool.PostgreSQL, errors.New(EnvPostgresDSN+" not set; ran on SQLite only"))
	}
	return m
}

// SQLite returns a store on a new database file in t.TempDir().
func SQLite(t testing.TB) *inventory.Store {
	t.Helper()
	return open(t, SQLiteDSN(t))
}

// SQLiteDSN returns a DSN for a new, not yet created database file.
func SQLiteDSN(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "mica.db")
}

// Postgres returns a store in a new schema of the test server, or skips
// the test when MICA_TEST_POSTGRES_DSN is unset.
func Postgres(t testing.TB) *inventory.Store {
	t.Helper()
	return open(t, PostgresDSN(t))
}

// PostgresDSN creates an empty schema mica_test_<random>, schedules its
// DROP … CASCADE, and returns a DSN whose search_path selects it — for
// tests that need to Open the same database more than once. It skips the
// test when MICA_TEST_POSTGRES_DSN is unset.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgresDSN)
	if base == "" {
		testtool.Missing(t, testtool.PostgreSQL, errors.New(EnvPostgresDSN+" not set"))
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("inventorytest: %s is not a URL: %v", EnvPostgresDSN, err)
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	schema := "mica_test_" + hex.EncodeToString(rnd[:])

	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("inventorytest: open PostgreSQL: %v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The schema name is generated here from hex digits only, so
	// formatting it into the statement is safe.
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("inventorytest: create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			t.Errorf("inventorytest: drop schema %s: %v", schema, err)
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("inventorytest: drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// open opens dsn and closes the store at cleanup. Cleanups run last-in
// first-out, so the store closes before its schema is dropped.
func open(t testing.TB, dsn string) *inventory.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := inventory.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("inventorytest: open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("inventorytest: close store: %v", err)
		}
	})
	return s
}
