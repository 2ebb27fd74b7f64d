package inventory

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

// migrationFS holds the schema history. File names are
// NNNN_description.sql (both dialects) or NNNN_description.<dialect>.sql
// (one dialect; used where the SQL must differ). A version may have either
// one shared file or one file per dialect, never both for one dialect.
// Applied migrations are never edited: add a new version instead.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string // file name, recorded in schema_migrations
	sql     string
}

// migrations returns the dialect's migrations in version order.
func migrations(dialect string) ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]migration{}
	for _, e := range entries {
		name := e.Name()
		base := strings.TrimSuffix(name, ".sql")
		if d := base[strings.LastIndexByte(base, '.')+1:]; strings.Contains(base, ".") {
			if d != DialectSQLite && d != DialectPostgres {
				return nil, fmt.Errorf("inventory: migration %s: unknown dialect %q", name, d)
			}
			if d != dialect {
				continue
			}
		}
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("inventory: migration %s: name must start with a positive version and '_'", name)
		}
		if prev, dup := byVersion[v]; dup {
			return nil, fmt.Errorf("inventory: migrations %s and %s share version %d", prev.name, name, v)
		}
		body, err := fs.ReadFile(migrationFS, "migrations/"+name)
		if err != nil {
			return nil, err
		}
		byVersion[v] = migration{version: v, name: name, sql: string(body)}
	}
	out := make([]migration, 0, len(byVersion))
	for _, m := range byVersion {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("inventory: migration version %d missing (found %s)", i+1, m.name)
		}
	}
	return out, nil
}

// migrate brings the schema up to date in a single transaction: either all
// pending migrations apply or none do. Concurrent callers are serialised
// by the database (an advisory lock on PostgreSQL, the IMMEDIATE write
// lock on SQLite), and the second one finds nothing left to do.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations(s.dialect)
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		if s.dialect == DialectPostgres {
			// Keyed by schema so independent schemas (one per test, or
			// per tenant) do not queue behind each other. Transaction
			// scoped: released by COMMIT/ROLLBACK, even if we crash.
			if _, err := tx.ExecContext(ctx,
				`SELECT pg_advisory_xact_lock(hashtext('mica.inventory.migrate:' || coalesce(current_schema(), '')))`); err != nil {
				return fmt.Errorf("inventory: migration lock: %w", err)
			}
		}
		ddl := `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at TEXT NOT NULL)`
		if _, err := tx.ExecContext(ctx, ddl); err != nil {
			return fmt.Errorf("inventory: create schema_migrations: %w", err)
		}
		var applied []int
		if err := tx.SelectContext(ctx, &applied, `SELECT version FROM schema_migrations ORDER BY version`); err != nil {
			return fmt.Errorf("inventory: read schema_migrations: %w", err)
		}
		done := map[int]bool{}
		for _, v := range applied {
			done[v] = true
			if v > len(ms) {
				return fmt.Errorf("inventory: database schema version %d is newer than this MICA supports (%d); upgrade MICA", v, len(ms))
			}
		}
		for _, m := range ms {
			if done[m.version] {
				continue
			}
			// No arguments: pgx uses the simple protocol, which accepts
			// a multi-statement script; modernc.org/sqlite runs every
			// statement of the text.
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("inventory: apply migration %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				m.version, m.name, normTime(s.now()).Format(sqliteTimeLayout)); err != nil {
				return fmt.Errorf("inventory: record migration %s: %w", m.name, err)
			}
		}
		return nil
	})
	return err
}

// SchemaVersion returns the highest applied migration version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.db.GetContext(ctx, &v, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`); err != nil {
		return 0, fmt.Errorf("inventory: schema version: %w", err)
	}
	return v, nil
}
