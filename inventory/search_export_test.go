package inventory

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// OpenAtVersion creates the schema of dsn only up to migration version v,
// as an older MICA would have left it, and returns the raw pool (close it
// before Open migrates the rest). For migration tests.
func OpenAtVersion(ctx context.Context, dsn string, v int) (*sqlx.DB, error) {
	dialect, driverName, driverDSN, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	ms, err := migrations(dialect)
	if err != nil {
		return nil, err
	}
	if v > len(ms) {
		return nil, fmt.Errorf("no migration %d", v)
	}
	db, err := sqlx.Open(driverName, driverDSN)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, dialect: dialect}
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,
			name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
			return err
		}
		for _, m := range ms[:v] {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 'test')`),
				m.version, m.name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
