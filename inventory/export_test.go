package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Test-only access to internals. Compiled only with the package's tests,
// so none of this is part of the API.

// RawDB exposes the pool so tests can tamper with rows and inspect pragmas.
func (s *Store) RawDB() *sqlx.DB { return s.db }

// SetNow replaces the clock. Call before concurrent use.
func (s *Store) SetNow(f func() time.Time) { s.now = f }

// SetVerifyBatch shrinks VerifyEvents' page size so paging is exercised
// with a short chain.
func (s *Store) SetVerifyBatch(n int) { s.verifyBatch = n }

// TimeArg exposes the dialect's time encoding for raw test SQL.
func (s *Store) TimeArg(t time.Time) any { return s.timeArg(t) }

// Analyze refreshes planner statistics (after Seed), as the store's
// maintenance would in production.
func (s *Store) Analyze(ctx context.Context) error {
	if s.dialect == DialectPostgres {
		_, err := s.db.ExecContext(ctx, `ANALYZE`)
		return err
	}
	return s.optimize(ctx, true)
}

// ParseDSN exposes DSN parsing for table tests.
var ParseDSN = parseDSN

// Seed bulk-inserts certificates as given (state, DER, fingerprint …) in
// one transaction, without events: fast fixtures for query tests and
// benchmarks. IDs are written back.
func (s *Store) Seed(ctx context.Context, certs []Certificate) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		ins, err := tx.PreparexContext(ctx, s.q(`INSERT INTO certificates
			(issuer_id, serial, subject, common_name, not_before, not_after, pubkey_sha256, key_type,
			 profile, requester, protocol, state, revocation_reason, revoked_at, superseded_by,
			 predecessor, predecessor_issuer_id, fingerprint_sha256, der, search_text, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`))
		if err != nil {
			return err
		}
		defer ins.Close()
		san, err := tx.PreparexContext(ctx, s.q(`INSERT INTO certificate_sans (cert_id, pos, kind, value) VALUES (?, ?, ?, ?)`))
		if err != nil {
			return err
		}
		defer san.Close()
		now := s.now()
		for i := range certs {
			c := &certs[i]
			var values []string
			for _, v := range c.SANs {
				_, val, _ := splitSAN(v)
				values = append(values, val)
			}
			if c.CreatedAt.IsZero() {
				c.CreatedAt, c.UpdatedAt = now, now
			}
			if err := ins.QueryRowxContext(ctx, c.IssuerID, c.Serial, c.Subject, c.CommonName,
				s.timeArg(c.NotBefore), s.timeArg(c.NotAfter), c.PublicKeySHA256, c.KeyType, c.Profile,
				c.Requester, c.Protocol, string(c.State), c.RevocationReason, s.nullTimeArg(c.RevokedAt),
				c.SupersededBy, c.Predecessor, c.PredecessorIssuerID, c.FingerprintSHA256, c.DER,
				searchText(c.CommonName, c.Subject, values), s.timeArg(c.CreatedAt), s.timeArg(c.UpdatedAt)).Scan(&c.ID); err != nil {
				return fmt.Errorf("seed %d: %w", i, err)
			}
			for j, v := range c.SANs {
				k, val, err := splitSAN(v)
				if err != nil {
					return err
				}
				if _, err := san.ExecContext(ctx, c.ID, j, k, val); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// LatestMigration is the highest migration version for dialect, so
// schema tests need no edit when a migration is added.
func LatestMigration(dialect string) int {
	ms, err := migrations(dialect)
	if err != nil || len(ms) == 0 {
		return -1
	}
	return ms[len(ms)-1].version
}
