package inventory

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// ErrNeedsPGDump is returned by Snapshot on PostgreSQL: a consistent copy
// of a server database is pg_dump's job (docs/keys.md pairs it with
// `mica backup create`), not a client library's.
var ErrNeedsPGDump = errors.New("inventory: PostgreSQL is backed up with pg_dump, not by mica")

// Snapshot writes a consistent copy of the SQLite database to path with
// VACUUM INTO: one read transaction, so concurrent writers (a running
// server) neither block nor tear the copy, and the result is compact and
// self-contained (no WAL). path must not exist.
func (s *Store) Snapshot(ctx context.Context, path string) error {
	if s.dialect != DialectSQLite {
		return ErrNeedsPGDump
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%w: snapshot target %s exists", ErrInvalid, path)
	}
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("inventory: snapshot: %w", err)
	}
	return nil
}

// BackupTables are the tables whose row counts a backup records and a
// restore drill compares: the ones that hold the CA's history.
var BackupTables = []string{"issuers", "certificates", "events", "keys"}

// TableCounts counts the rows of BackupTables.
func (s *Store) TableCounts(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for _, t := range BackupTables {
		var n int64
		// t comes from the constant list above, never from input.
		if err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM `+t); err != nil {
			return nil, fmt.Errorf("inventory: count %s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

// CertificateDER calls fn with every stored certificate's issuer ID and
// DER (those not yet signed are skipped), in storage order, for restore
// drills that check every signature.
func (s *Store) CertificateDER(ctx context.Context, fn func(issuerID string, der []byte) error) error {
	rows, err := s.db.QueryxContext(ctx, `SELECT issuer_id, der FROM certificates WHERE der IS NOT NULL ORDER BY id`)
	if err != nil {
		return fmt.Errorf("inventory: read certificates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var der []byte
		if err := rows.Scan(&id, &der); err != nil {
			return fmt.Errorf("inventory: read certificates: %w", err)
		}
		if len(der) == 0 {
			continue
		}
		if err := fn(id, der); err != nil {
			return err
		}
	}
	return rows.Err()
}
