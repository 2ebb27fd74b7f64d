package inventory

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers driver "sqlite"
)

// Dialect names returned by Store.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// sqliteBusyTimeout is how long a SQLite connection waits for another
// writer before giving up with SQLITE_BUSY. Writes are short (one
// certificate, one event), so 10s only runs out when something is stuck.
const sqliteBusyTimeout = 10 * time.Second

// Store is the inventory. It is safe for concurrent use; every method
// honours its context. Create it with Open and release it with Close.
type Store struct {
	db      *sqlx.DB
	dialect string
	// forUpdate is appended to SELECTs that must lock the row they read.
	// PostgreSQL needs it; SQLite has no row locks (and no syntax for
	// them) because its IMMEDIATE transactions already hold the single
	// write lock.
	forUpdate string
	now       func() time.Time
	// verifyBatch is how many events VerifyEvents reads per query,
	// bounding memory on long logs (a field so tests can make it small).
	verifyBatch int

	// writeGate admits one write transaction at a time on SQLite, where
	// the database has a single writer anyway: in-process writers queue
	// here in order instead of polling SQLite's busy handler, which is
	// unfair under load and let a waiter starve past busy_timeout
	// (SQLITE_BUSY at BEGIN with 20 concurrent writers on a loaded
	// machine). nil on PostgreSQL, whose row locks need no gate. Other
	// processes on the same file (the CLI) still meet the busy timeout.
	writeGate chan struct{}

	stopMaint chan struct{} // closed by Close to end the maintenance loop
	maintDone chan struct{} // closed when the loop has ended
	closeOnce sync.Once
}

// Open connects to the database named by dsn, applies any pending
// migrations and returns the store.
//
// Accepted DSNs:
//
//	sqlite:/var/lib/mica/mica.db[?params]  (also sqlite:///abs/path.db)
//	/var/lib/mica/mica.db                  (bare path ending in .db)
//	postgres://user@host:5432/db?sslmode=disable&search_path=mica
//	postgresql://…                         (same)
//
// For SQLite, extra query parameters are passed to the driver, but the
// durability and locking settings (WAL, foreign_keys, synchronous=FULL,
// _txlock=immediate) are always forced. busy_timeout (10s), cache_size
// (16 MiB) and mmap_size (256 MiB) are defaults a _pragma can override.
// In-memory SQLite databases are refused: each pooled connection would
// see a different, empty database.
//
// Errors never include the DSN (it may carry a password). A database whose
// schema is newer than this binary is refused.
func Open(ctx context.Context, dsn string) (*Store, error) {
	dialect, driverName, driverDSN, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if dialect == DialectSQLite {
		// Create the file owner-only before SQLite does (it would use
		// 0644): it holds the audit log and who owns which credential.
		// SQLite gives the -wal and -shm files the same mode.
		path, _, _ := strings.Cut(driverDSN, "?")
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
		} else if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("inventory: create SQLite database: %w", err)
		}
	}
	db, err := sqlx.Open(driverName, driverDSN)
	if err != nil {
		return nil, fmt.Errorf("inventory: open %s database: %w", dialect, err)
	}
	s := &Store{db: db, dialect: dialect, now: time.Now, verifyBatch: 1000}
	switch dialect {
	case DialectPostgres:
		s.forUpdate = " FOR UPDATE"
		// Replicas share the server's connection limit; keep a modest idle
		// pool and recycle connections so failovers and pgbouncer restarts
		// are picked up.
		db.SetMaxIdleConns(8)
		db.SetConnMaxLifetime(30 * time.Minute)
		db.SetConnMaxIdleTime(5 * time.Minute)
	case DialectSQLite:
		// Readers run concurrently under WAL; writers queue on the busy
		// timeout. Bounding the pool bounds the number of file handles and
		// page caches.
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
		s.writeGate = make(chan struct{}, 1)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("inventory: connect to %s database: %w", dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.stopMaint, s.maintDone = make(chan struct{}), make(chan struct{})
	if dialect == DialectSQLite {
		// Query plans depend on statistics (see optimize); collect them
		// now and keep them fresh while the process runs.
		if err := s.optimize(ctx, true); err != nil {
			db.Close()
			return nil, err
		}
		go s.maintain(sqliteOptimizeEvery)
	} else {
		close(s.maintDone) // PostgreSQL's autovacuum keeps statistics itself
	}
	return s, nil
}

// sqliteOptimizeEvery is how often a SQLite store refreshes its planner
// statistics, as SQLite recommends for long-lived connections.
const sqliteOptimizeEvery = time.Hour

// optimize runs SQLite's PRAGMA optimize, which re-analyses tables whose
// size changed a lot since the last analysis (cheap when nothing did).
// Without statistics SQLite picks, for example, the (state, not_after)
// index plus a sort for "issued, newest first" instead of walking the
// (state) index in id order — 7ms instead of 0.2ms at 50k rows. all
// forces analysis of every table (0x10002), used at Open.
func (s *Store) optimize(ctx context.Context, all bool) error {
	if s.dialect != DialectSQLite {
		return nil
	}
	q := `PRAGMA optimize`
	if all {
		q = `PRAGMA optimize=0x10002`
	}
	if _, err := s.db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("inventory: optimize: %w", err)
	}
	return nil
}

// maintain refreshes statistics periodically until Close.
func (s *Store) maintain(every time.Duration) {
	defer close(s.maintDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stopMaint:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_ = s.optimize(ctx, false) // best effort; the next tick retries
			cancel()
		}
	}
}

// parseDSN maps a MICA DSN to (dialect, driver name, driver DSN).
func parseDSN(dsn string) (dialect, driverName, driverDSN string, err error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		// pgx sends unknown URL parameters (search_path, application_name,
		// statement_timeout …) as run-time parameters at connect time, so
		// they apply to every pooled connection without extra code.
		return DialectPostgres, "pgx", dsn, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		rest := strings.TrimPrefix(dsn, "sqlite:")
		rest = strings.TrimPrefix(rest, "//") // sqlite:///abs/path.db
		d, err := sqliteDSN(rest)
		return DialectSQLite, "sqlite", d, err
	default:
		path, _, _ := strings.Cut(dsn, "?")
		if strings.HasSuffix(path, ".db") {
			d, err := sqliteDSN(dsn)
			return DialectSQLite, "sqlite", d, err
		}
	}
	return "", "", "", fmt.Errorf("%w: database DSN must start with sqlite:, postgres:// or postgresql://, or be a path ending in .db", ErrInvalid)
}

// sqliteDSN builds the modernc.org/sqlite DSN for path[?query], forcing the
// settings the store's guarantees depend on. They are DSN parameters, not
// statements run after Open, because database/sql opens connections lazily
// and every one of them must carry them.
func sqliteDSN(pathQuery string) (string, error) {
	path, rawQuery, _ := strings.Cut(pathQuery, "?")
	if path == "" || strings.Contains(path, ":memory:") || strings.Contains(rawQuery, "mode=memory") {
		return "", fmt.Errorf("%w: SQLite DSN needs a file path (in-memory databases are not supported)", ErrInvalid)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", fmt.Errorf("%w: SQLite DSN query: %v", ErrInvalid, err)
	}
	// Forced: the store's durability and integrity guarantees rest on
	// these, so a DSN cannot weaken them. Defaults: tuning a DSN may
	// override. cache_size and mmap_size matter for full scans (free-text
	// search): at 50k certificates mmap roughly halves their cost.
	forced := map[string]string{"foreign_keys": "foreign_keys(1)", "journal_mode": "journal_mode(WAL)", "synchronous": "synchronous(FULL)"}
	defaults := map[string]string{
		"busy_timeout": fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()),
		"cache_size":   "cache_size(-16000)",   // KiB per connection
		"mmap_size":    "mmap_size(268435456)", // 256 MiB
	}
	if q.Get("_busy_timeout") != "" || q.Get("_timeout") != "" {
		delete(defaults, "busy_timeout")
	}
	var pragmas []string
	for _, p := range q["_pragma"] {
		name := pragmaName(p)
		if _, ok := forced[name]; ok {
			continue
		}
		delete(defaults, name)
		pragmas = append(pragmas, p)
	}
	for _, k := range []string{"_txlock", "_journal_mode", "_journal", "_foreign_keys", "_fk", "_synchronous", "_sync", "_query_only"} {
		q.Del(k)
	}
	for _, m := range []map[string]string{defaults, forced} {
		for _, p := range m {
			pragmas = append(pragmas, p)
		}
	}
	sort.Strings(pragmas) // deterministic DSN; the driver orders them itself
	q["_pragma"] = pragmas
	// IMMEDIATE: take the write lock at BEGIN. A DEFERRED transaction that
	// reads and then writes can fail with SQLITE_BUSY without waiting when
	// another writer committed in between; IMMEDIATE ones simply queue.
	q.Set("_txlock", "immediate")
	return path + "?" + q.Encode(), nil
}

// Close stops background maintenance and releases the connection pool.
// Calls in flight fail afterwards. Closing twice is harmless.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stopMaint)
		<-s.maintDone
		err = s.db.Close()
	})
	return err
}

// Dialect reports the backend: DialectSQLite or DialectPostgres.
func (s *Store) Dialect() string { return s.dialect }

// Ping checks that the database answers (for /healthz).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("inventory: ping: %w", err)
	}
	return nil
}

// q rebinds a '?'-placeholder query for the dialect's driver.
func (s *Store) q(query string) string { return s.db.Rebind(query) }

// inTx runs fn in a write transaction and commits it; any error (or panic)
// rolls back. On SQLite the transaction begins IMMEDIATE (see sqliteDSN),
// so fn runs holding the database's write lock; on PostgreSQL it runs at
// READ COMMITTED and takes row locks as it goes. When inTx returns nil the
// commit is durable (synchronous=FULL on SQLite).
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) (err error) {
	if s.writeGate != nil {
		select {
		case s.writeGate <- struct{}{}:
			defer func() { <-s.writeGate }()
		case <-ctx.Done():
			return fmt.Errorf("inventory: begin transaction: %w", ctx.Err())
		}
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("inventory: begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("inventory: commit: %w", err)
	}
	return nil
}

// pragmaName returns the lower-case PRAGMA name of a _pragma value such as
// "busy_timeout(5000)" or "cache_size = -2000".
func pragmaName(p string) string {
	if i := strings.IndexAny(p, "(="); i >= 0 {
		p = p[:i]
	}
	return strings.ToLower(strings.TrimSpace(p))
}
