package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// CRLDirty is the durable mark "issuer's CRL must be re-signed": written
// by RevokeCertificate in the revocation's own transaction, so it outlives
// the process that revoked. Since is when the issuer first became dirty;
// Generation grows with every revocation while the mark stands, which is
// what ClearCRLDirty compares.
type CRLDirty struct {
	IssuerID   string
	Since      time.Time
	Generation int64
}

// markCRLDirtyTx marks issuerID dirty inside tx, or bumps the generation
// of its standing mark (keeping Since, so a stream of revocations cannot
// postpone the CRL forever).
func (s *Store) markCRLDirtyTx(ctx context.Context, tx *sqlx.Tx, issuerID string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO crl_dirty (issuer_id, since, generation) VALUES (?, ?, 1)
		ON CONFLICT (issuer_id) DO UPDATE SET generation = crl_dirty.generation + 1`), issuerID, s.timeArg(now)); err != nil {
		return fmt.Errorf("inventory: mark the CRL of %s dirty: %w", issuerID, err)
	}
	return nil
}

type crlDirtyRow struct {
	IssuerID   string `db:"issuer_id"`
	Since      dbTime `db:"since"`
	Generation int64  `db:"generation"`
}

func (r crlDirtyRow) mark() CRLDirty {
	return CRLDirty{IssuerID: r.IssuerID, Since: r.Since.Time, Generation: r.Generation}
}

// CRLDirtyMarks lists every issuer whose CRL must be re-signed, oldest
// mark first. The revocation worker reads it at start and on every sweep,
// so a mark left by a replica that died before signing is picked up by
// any other. Safe for concurrent use.
func (s *Store) CRLDirtyMarks(ctx context.Context) ([]CRLDirty, error) {
	var rows []crlDirtyRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT issuer_id, since, generation FROM crl_dirty ORDER BY since, issuer_id`); err != nil {
		return nil, fmt.Errorf("inventory: list dirty CRLs: %w", err)
	}
	out := make([]CRLDirty, len(rows))
	for i, r := range rows {
		out[i] = r.mark()
	}
	return out, nil
}

// CRLDirtyMark returns issuerID's mark. Errors: ErrNotFound when the
// issuer's CRL is clean.
func (s *Store) CRLDirtyMark(ctx context.Context, issuerID string) (*CRLDirty, error) {
	var r crlDirtyRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT issuer_id, since, generation FROM crl_dirty WHERE issuer_id = ?`), issuerID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("%w: no dirty CRL mark for %s", ErrNotFound, issuerID)
	case err != nil:
		return nil, fmt.Errorf("inventory: read the dirty CRL mark of %s: %w", issuerID, err)
	}
	m := r.mark()
	return &m, nil
}

// ClearCRLDirty removes issuerID's mark if its generation is still
// generation, and reports whether it did. The caller read the mark before
// it read the revocations for a CRL and calls this only once that CRL is
// committed: a revocation committed in between bumped the generation, so
// its mark stays and the next CRL covers it. Call it only holding the
// issuer's CRL job lock (so no one else clears and re-creates the mark
// meanwhile).
func (s *Store) ClearCRLDirty(ctx context.Context, issuerID string, generation int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM crl_dirty WHERE issuer_id = ? AND generation = ?`), issuerID, generation)
	if err != nil {
		return false, fmt.Errorf("inventory: clear the dirty CRL mark of %s: %w", issuerID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("inventory: clear the dirty CRL mark of %s: %w", issuerID, err)
	}
	return n > 0, nil
}
