package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// MaxESTTokenList bounds ESTTokens: the newest tokens are what an admin
// acts on, and a page of thousands helps nobody.
const MaxESTTokenList = 1000

// ESTTokens lists enrollment tokens, newest first, at most
// MaxESTTokenList. SecretSHA256 is left empty: a listing has no use for
// the digest, so it never leaves the store through one.
func (s *Store) ESTTokens(ctx context.Context) ([]ESTToken, error) {
	var rows []estTokenRow
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT id, label, '' AS secret_sha256, names, expires_at, used_at, used_by, created_by, created_at
		FROM est_tokens ORDER BY created_at DESC, id LIMIT ?`), MaxESTTokenList)
	if err != nil {
		return nil, fmt.Errorf("inventory: list EST tokens: %w", err)
	}
	out := make([]ESTToken, 0, len(rows))
	for i := range rows {
		t, err := rows[i].token()
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, nil
}

// RevokeESTToken deletes an unused token (expired or not) and appends ev
// (default action "est.token.revoke", object "est-token:{id}") in the
// same transaction. The delete is conditional on the token being unused,
// so it cannot race a redemption: of the two, one wins.
//
// Errors: ErrNotFound for an unknown id; ErrConflict for a used token
// (its record stays: it names the certificate's requester).
func (s *Store) RevokeESTToken(ctx context.Context, id string, ev Event) error {
	defaultEvent(&ev, "est.token.revoke", "est-token:"+id)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM est_tokens WHERE id = ? AND used_at IS NULL`), id)
		if err != nil {
			return fmt.Errorf("inventory: revoke EST token: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			var one int
			err := tx.GetContext(ctx, &one, s.q(`SELECT 1 FROM est_tokens WHERE id = ?`), id)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: EST token", ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("inventory: read EST token: %w", err)
			}
			return fmt.Errorf("%w: EST token %s has been used", ErrConflict, id)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}
