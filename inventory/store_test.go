package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mica-pki/mica/internal/testtool"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

func TestParseDSN(t *testing.T) {
	tests := []struct {
		dsn         string
		dialect     string
		driver      string
		pathPrefix  string // driver DSN must start with this
		wantErr     bool
		wantInQuery []string
		notInQuery  []string
	}{
		{dsn: "sqlite:/var/lib/mica/mica.db", dialect: "sqlite", driver: "sqlite", pathPrefix: "/var/lib/mica/mica.db?"},
		{dsn: "sqlite:///var/lib/mica/mica.db", dialect: "sqlite", driver: "sqlite", pathPrefix: "/var/lib/mica/mica.db?"},
		{dsn: "sqlite:relative/mica.sqlite", dialect: "sqlite", driver: "sqlite", pathPrefix: "relative/mica.sqlite?"},
		{dsn: "/srv/mica.db", dialect: "sqlite", driver: "sqlite", pathPrefix: "/srv/mica.db?"},
		{dsn: "mica.db", dialect: "sqlite", driver: "sqlite", pathPrefix: "mica.db?"},
		{
			// Caller pragmas survive, but safety settings cannot be weakened.
			dsn:     "sqlite:/x.db?_pragma=cache_size(-4000)&_pragma=synchronous(OFF)&_txlock=deferred&_journal_mode=DELETE",
			dialect: "sqlite", driver: "sqlite", pathPrefix: "/x.db?",
			wantInQuery: []string{"cache_size(-4000)", "synchronous(FULL)", "_txlock=immediate", "journal_mode(WAL)"},
		},
		{dsn: "postgres://u@h/db?sslmode=disable&search_path=s", dialect: "postgres", driver: "pgx", pathPrefix: "postgres://u@h/db"},
		{dsn: "postgresql://u@h/db", dialect: "postgres", driver: "pgx", pathPrefix: "postgresql://u@h/db"},
		{dsn: "sqlite::memory:", wantErr: true},
		{dsn: "sqlite:file::memory:?cache=shared", wantErr: true},
		{dsn: "sqlite:", wantErr: true},
		{dsn: "mysql://u@h/db", wantErr: true},
		{dsn: "/srv/mica.sqlite3", wantErr: true},
		{dsn: "", wantErr: true},
	}
	for _, tt := range tests {
		dialect, driver, ddsn, err := inventory.ParseDSN(tt.dsn)
		if tt.wantErr {
			if !errors.Is(err, inventory.ErrInvalid) {
				t.Errorf("ParseDSN(%q) err = %v, want ErrInvalid", tt.dsn, err)
			}
			continue
		}
		if err != nil || dialect != tt.dialect || driver != tt.driver || !strings.HasPrefix(ddsn, tt.pathPrefix) {
			t.Errorf("ParseDSN(%q) = %q, %q, %q, %v", tt.dsn, dialect, driver, ddsn, err)
			continue
		}
		if dialect != "sqlite" {
			continue
		}
		q, _ := url.ParseQuery(ddsn[strings.Index(ddsn, "?")+1:])
		joined := strings.Join(q["_pragma"], " ") + " _txlock=" + q.Get("_txlock")
		for _, want := range append([]string{"busy_timeout(", "foreign_keys(1)", "journal_mode(WAL)", "synchronous(FULL)", "_txlock=immediate"}, tt.wantInQuery...) {
			if !strings.Contains(joined, want) {
				t.Errorf("ParseDSN(%q): %q missing from %q", tt.dsn, want, joined)
			}
		}
		for _, bad := range append([]string{"synchronous(OFF)", "DELETE", "deferred"}, tt.notInQuery...) {
			if strings.Contains(ddsn, bad) {
				t.Errorf("ParseDSN(%q): unsafe %q kept in %q", tt.dsn, bad, ddsn)
			}
		}
	}
}

// Every pooled SQLite connection must carry the pragmas, not just the
// first one: hold several connections at once and ask each.
func TestSQLitePragmasOnEveryConnection(t *testing.T) {
	s := inventorytest.SQLite(t)
	ctx := context.Background()
	db := s.RawDB()
	for i := 0; i < 4; i++ {
		conn, err := db.Connx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var journal string
		var fk, sync, busy int
		for q, dst := range map[string]any{
			"PRAGMA journal_mode": &journal, "PRAGMA foreign_keys": &fk,
			"PRAGMA synchronous": &sync, "PRAGMA busy_timeout": &busy,
		} {
			if err := conn.GetContext(ctx, dst, q); err != nil {
				t.Fatalf("conn %d %s: %v", i, q, err)
			}
		}
		if journal != "wal" || fk != 1 || sync != 2 || busy < 5000 {
			t.Errorf("conn %d: journal_mode=%s foreign_keys=%d synchronous=%d busy_timeout=%d", i, journal, fk, sync, busy)
		}
	}
}

func TestOpenTwiceIsIdempotent(t *testing.T) {
	dsns := map[string]func(testing.TB) string{
		"sqlite": inventorytest.SQLiteDSN, "postgres": inventorytest.PostgresDSN,
	}
	for name, mk := range dsns {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dsn := mk(t)
			ctx := context.Background()
			s1, err := inventory.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			iss := inventorytest.Issuer(t, s1, "ca1")
			s1.Close()
			s2, err := inventory.Open(ctx, dsn)
			if err != nil {
				t.Fatalf("second open: %v", err)
			}
			defer s2.Close()
			if s2.Dialect() != name {
				t.Errorf("Dialect() = %q", s2.Dialect())
			}
			if err := s2.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			if v, err := s2.SchemaVersion(ctx); err != nil || v != inventory.LatestMigration(name) {
				t.Fatalf("SchemaVersion = %d, %v", v, err)
			}
			var rows int
			if err := s2.RawDB().GetContext(ctx, &rows, `SELECT COUNT(*) FROM schema_migrations`); err != nil || rows != inventory.LatestMigration(s2.Dialect()) {
				t.Fatalf("schema_migrations rows = %d, %v", rows, err)
			}
			if got, err := s2.Issuer(ctx, "ca1"); err != nil || got.Subject != iss.Subject {
				t.Fatalf("data lost across reopen: %v, %v", got, err)
			}
			if name == "sqlite" {
				path := strings.TrimPrefix(dsn, "sqlite:")
				for _, f := range []string{path, path + "-wal"} {
					fi, err := os.Stat(f)
					if err != nil {
						t.Fatal(err)
					}
					if fi.Mode().Perm() != 0o600 {
						t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
					}
				}
			}
		})
	}
}

// Replicas starting together must migrate exactly once and all succeed.
func TestConcurrentOpen(t *testing.T) {
	dsns := map[string]func(testing.TB) string{
		"sqlite": inventorytest.SQLiteDSN, "postgres": inventorytest.PostgresDSN,
	}
	for name, mk := range dsns {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dsn := mk(t)
			const replicas = 8
			var wg sync.WaitGroup
			errs := make(chan error, replicas)
			stores := make(chan *inventory.Store, replicas)
			for i := 0; i < replicas; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := inventory.Open(context.Background(), dsn)
					if err != nil {
						errs <- err
						return
					}
					stores <- s
				}()
			}
			wg.Wait()
			close(errs)
			close(stores)
			for err := range errs {
				t.Errorf("concurrent open: %v", err)
			}
			for s := range stores {
				var rows int
				if err := s.RawDB().GetContext(context.Background(), &rows, `SELECT COUNT(*) FROM schema_migrations`); err != nil || rows != inventory.LatestMigration(s.Dialect()) {
					t.Errorf("schema_migrations rows = %d, %v", rows, err)
				}
				s.Close()
			}
		})
	}
}

// A database migrated by a newer MICA must be refused, not half-used.
func TestOpenRefusesNewerSchema(t *testing.T) {
	dsns := map[string]func(testing.TB) string{
		"sqlite": inventorytest.SQLiteDSN, "postgres": inventorytest.PostgresDSN,
	}
	for name, mk := range dsns {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dsn := mk(t)
			s, err := inventory.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			if err := rawExec(t, s, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future.sql', 'x')`); err != nil {
				t.Fatal(err)
			}
			s.Close()
			_, err = inventory.Open(context.Background(), dsn)
			if err == nil || !strings.Contains(err.Error(), "newer") {
				t.Fatalf("Open on newer schema: err = %v", err)
			}
		})
	}
}

func TestOpenErrorsDoNotLeakDSN(t *testing.T) {
	const secret = "s3cr3t-pw"
	_, err := inventory.Open(context.Background(), fmt.Sprintf("postgres://mica:%s@127.0.0.1:1/nodb?sslmode=disable&connect_timeout=2", secret))
	if err == nil {
		t.Fatal("Open to a closed port succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error leaks the password: %v", err)
	}
	// A directory that does not exist cannot hold the database.
	_, err = inventory.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "missing", "dir", "mica.db"))
	if err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(inventorytest.EnvPostgresDSN) == "" {
		fmt.Fprintln(os.Stderr, "inventory tests: "+inventorytest.EnvPostgresDSN+" not set, PostgreSQL cases skip")
	}
	code := m.Run()
	fmt.Fprint(os.Stderr, testtool.Summary())
	os.Exit(code)
}
