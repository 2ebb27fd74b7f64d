package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// CRL is the newest CRL of one issuer and scope, stored so that every
// replica serves the same bytes (and so the same ETag) for it.
type CRL struct {
	IssuerID   string
	Shard      int  // 0: the full CRL; 1..N: partition N of a sharded issuer
	Delta      bool // a delta CRL against an earlier full one
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	Entries    int64
	SHA256     string // hex of DER, used as the HTTP ETag
	DER        []byte
	CreatedAt  time.Time
}

// NextCRLNumber returns the next CRL Number of issuerID: 1 the first time,
// then one more on every call. The increment is a single upsert in its own
// transaction (row lock on PostgreSQL, the write lock on SQLite), so two
// replicas asking at once get different numbers and a number is never
// handed out twice, even if the CRL it was meant for is never stored.
//
// Errors: ErrNotFound if the issuer does not exist.
func (s *Store) NextCRLNumber(ctx context.Context, issuerID string) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &n, s.q(`INSERT INTO crl_numbers (issuer_id, number) VALUES (?, 1)
			ON CONFLICT (issuer_id) DO UPDATE SET number = crl_numbers.number + 1 RETURNING number`), issuerID)
		if isForeignKeyViolation(err) {
			return fmt.Errorf("%w: issuer %s", ErrNotFound, issuerID)
		}
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return 0, fmt.Errorf("inventory: next CRL number for %s: %w", issuerID, err)
	}
	return n, err
}

// PutCRL stores c as the newest CRL of its issuer and scope. A CRL whose
// Number is not higher than the stored one is ignored (a slow replica must
// not replace a newer CRL with an older one); PutCRL reports whether c was
// stored. SHA256 and CreatedAt are filled in.
func (s *Store) PutCRL(ctx context.Context, c *CRL) (bool, error) {
	if len(c.DER) == 0 || c.Number <= 0 {
		return false, fmt.Errorf("%w: CRL needs DER and a positive number", ErrInvalid)
	}
	c.SHA256 = sha256Hex(c.DER)
	c.CreatedAt = normTime(s.now())
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO crls (issuer_id, shard, delta, number, this_update, next_update, entries, sha256, der, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (issuer_id, shard, delta) DO UPDATE SET number = excluded.number, this_update = excluded.this_update,
			next_update = excluded.next_update, entries = excluded.entries, sha256 = excluded.sha256, der = excluded.der,
			created_at = excluded.created_at
		WHERE crls.number < excluded.number`),
		c.IssuerID, c.Shard, boolInt(c.Delta), c.Number, s.timeArg(c.ThisUpdate), s.timeArg(c.NextUpdate), c.Entries,
		c.SHA256, c.DER, s.timeArg(c.CreatedAt))
	if isForeignKeyViolation(err) {
		return false, fmt.Errorf("%w: issuer %s", ErrNotFound, c.IssuerID)
	}
	if err != nil {
		return false, fmt.Errorf("inventory: store CRL %s/%d: %w", c.IssuerID, c.Shard, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// LatestCRL returns the stored CRL of an issuer and scope.
// Errors: ErrNotFound when none has been generated yet.
func (s *Store) LatestCRL(ctx context.Context, issuerID string, shard int, delta bool) (*CRL, error) {
	var r struct {
		Number     int64  `db:"number"`
		ThisUpdate dbTime `db:"this_update"`
		NextUpdate dbTime `db:"next_update"`
		Entries    int64  `db:"entries"`
		SHA256     string `db:"sha256"`
		DER        []byte `db:"der"`
		CreatedAt  dbTime `db:"created_at"`
	}
	err := s.db.GetContext(ctx, &r, s.q(`SELECT number, this_update, next_update, entries, sha256, der, created_at
		FROM crls WHERE issuer_id = ? AND shard = ? AND delta = ?`), issuerID, shard, boolInt(delta))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: no CRL for %s shard %d", ErrNotFound, issuerID, shard)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read CRL %s/%d: %w", issuerID, shard, err)
	}
	return &CRL{IssuerID: issuerID, Shard: shard, Delta: delta, Number: r.Number, ThisUpdate: r.ThisUpdate.Time,
		NextUpdate: r.NextUpdate.Time, Entries: r.Entries, SHA256: r.SHA256, DER: r.DER, CreatedAt: r.CreatedAt.Time}, nil
}

// RevokedEntry is one revoked certificate as a CRL lists it.
type RevokedEntry struct {
	Serial    string // canonical hex
	Reason    string // RFC 5280 name
	RevokedAt time.Time
	NotAfter  time.Time
}

// RevokedFilter selects the revoked certificates of one CRL.
type RevokedFilter struct {
	IssuerID string
	// Now drops certificates that expired at or before it: RFC 5280
	// lets an expired certificate leave the CRL, and keeping them would
	// make CRLs grow forever. Zero means the store's clock.
	Now time.Time
	// RevokedSince, when set, keeps only revocations at or after it (delta
	// CRLs).
	RevokedSince time.Time
}

// RevokedCertificates calls fn for every revoked, unexpired certificate of
// f.IssuerID, streaming from one database cursor: memory does not grow
// with the number of revocations, which is what lets a CRL of a million
// entries be built. The order is unspecified. fn's first error stops the
// walk and is returned.
func (s *Store) RevokedCertificates(ctx context.Context, f RevokedFilter, fn func(RevokedEntry) error) error {
	now := f.Now
	if now.IsZero() {
		now = s.now()
	}
	query := `SELECT serial, revocation_reason, revoked_at, not_after FROM certificates
		WHERE issuer_id = ? AND state = ? AND not_after > ?`
	args := []any{f.IssuerID, string(StateRevoked), s.timeArg(now)}
	if !f.RevokedSince.IsZero() {
		query += ` AND revoked_at >= ?`
		args = append(args, s.timeArg(f.RevokedSince))
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return fmt.Errorf("inventory: list revoked certificates of %s: %w", f.IssuerID, err)
	}
	defer rows.Close()
	var e RevokedEntry
	var at, na dbTime
	for rows.Next() {
		if err := rows.Scan(&e.Serial, &e.Reason, &at, &na); err != nil {
			return fmt.Errorf("inventory: scan revoked certificate: %w", err)
		}
		e.RevokedAt, e.NotAfter = at.Time, na.Time
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("inventory: list revoked certificates of %s: %w", f.IssuerID, err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
