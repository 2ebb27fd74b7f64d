package inventory

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// SealedACMEEABKey is an EAB key ID with its sealed HMAC key, for the
// re-wrapping pass only: nothing else lists sealed keys.
type SealedACMEEABKey struct {
	KeyID  string `db:"kid"`
	Sealed []byte `db:"sealed_key"`
}

// SealedACMEEABKeys lists every EAB key, bound or not, with its sealed
// HMAC key, oldest first.
func (s *Store) SealedACMEEABKeys(ctx context.Context) ([]SealedACMEEABKey, error) {
	var out []SealedACMEEABKey
	if err := s.db.SelectContext(ctx, &out, s.q(`SELECT kid, sealed_key FROM acme_eab_keys ORDER BY created_at, kid`)); err != nil {
		return nil, fmt.Errorf("inventory: list sealed EAB keys: %w", err)
	}
	return out, nil
}

// RewrapACMEEABKey replaces kid's sealed key by sealed, but only while it
// still is old (compare and swap), and appends ev (default action
// "acme.eab.rewrap", object "acme-eab:{kid}") in the same transaction.
// It reports whether it replaced: false means another replica re-wrapped
// (or an operator revoked) the key first, and nothing was written; so
// every replica may run the pass at start, and each key is re-wrapped and
// audited once.
func (s *Store) RewrapACMEEABKey(ctx context.Context, kid string, old, sealed []byte, ev Event) (bool, error) {
	if len(sealed) == 0 || len(old) == 0 {
		return false, fmt.Errorf("%w: re-wrapping needs the old and the new sealed key", ErrInvalid)
	}
	defaultEvent(&ev, "acme.eab.rewrap", "acme-eab:"+kid)
	done := false
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE acme_eab_keys SET sealed_key = ? WHERE kid = ? AND sealed_key = ?`), sealed, kid, old)
		if err != nil {
			return fmt.Errorf("inventory: re-wrap EAB key: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		done = true
		return s.appendEventTx(ctx, tx, &ev)
	})
	if err != nil {
		return false, err
	}
	return done, nil
}
