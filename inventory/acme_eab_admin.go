package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// MaxACMEEABKeyList bounds ACMEEABKeys.
const MaxACMEEABKeyList = 1000

// ACMEEABKeys lists EAB keys, newest first, at most MaxACMEEABKeyList.
// Sealed is left empty: a listing never carries the key, even sealed.
func (s *Store) ACMEEABKeys(ctx context.Context) ([]ACMEEABKey, error) {
	var rows []struct {
		KeyID     string `db:"kid"`
		Profile   string `db:"profile"`
		AccountID string `db:"account_id"`
		CreatedBy string `db:"created_by"`
		CreatedAt dbTime `db:"created_at"`
		UsedAt    dbTime `db:"used_at"`
	}
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT kid, profile, account_id, created_by, created_at, used_at
		FROM acme_eab_keys ORDER BY created_at DESC, kid LIMIT ?`), MaxACMEEABKeyList)
	if err != nil {
		return nil, fmt.Errorf("inventory: list EAB keys: %w", err)
	}
	out := make([]ACMEEABKey, 0, len(rows))
	for _, r := range rows {
		out = append(out, ACMEEABKey{KeyID: r.KeyID, Profile: r.Profile, AccountID: r.AccountID,
			CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.Time, UsedAt: r.UsedAt.ptr()})
	}
	return out, nil
}

// RevokeACMEEABKey deletes an EAB key no account has been bound with and
// appends ev (default action "acme.eab.revoke", object "acme-eab:{kid}")
// in the same transaction. Binding is itself conditional on the key being
// unbound (CreateACMEAccount), so a revoke and a binding cannot both win.
//
// Errors: ErrNotFound for an unknown key; ErrConflict for a bound key
// (deactivate the account instead: the key is spent already).
func (s *Store) RevokeACMEEABKey(ctx context.Context, kid string, ev Event) error {
	defaultEvent(&ev, "acme.eab.revoke", "acme-eab:"+kid)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM acme_eab_keys WHERE kid = ? AND account_id = ''`), kid)
		if err != nil {
			return fmt.Errorf("inventory: revoke EAB key: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			var account string
			err := tx.GetContext(ctx, &account, s.q(`SELECT account_id FROM acme_eab_keys WHERE kid = ?`), kid)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: EAB key", ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("inventory: read EAB key: %w", err)
			}
			return fmt.Errorf("%w: EAB key %s is bound to account %s", ErrConflict, kid, account)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}
