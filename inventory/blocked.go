package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// BlockedKey is a public key that must never be certified again, usually
// because its private key leaked. Keys are named by the SHA-256 of their
// SubjectPublicKeyInfo, the same digest Certificate.PublicKeySHA256 holds,
// so "block every key of these certificates" needs no key material.
type BlockedKey struct {
	PublicKeySHA256 string    `json:"pubkey_sha256"`
	Reason          string    `json:"reason"`
	Actor           string    `json:"actor"`
	CreatedAt       time.Time `json:"created_at"`
}

type blockedRow struct {
	PublicKeySHA256 string `db:"pubkey_sha256"`
	Reason          string `db:"reason"`
	Actor           string `db:"actor"`
	CreatedAt       dbTime `db:"created_at"`
}

func (r blockedRow) key() BlockedKey {
	return BlockedKey{PublicKeySHA256: r.PublicKeySHA256, Reason: r.Reason, Actor: r.Actor, CreatedAt: r.CreatedAt.Time}
}

// BlockKey adds k to the blocklist with ev in the same transaction. Blocking
// a key that is already blocked keeps the first entry and returns
// ErrDuplicate, so the record of who blocked it first survives.
// ev defaults: Action "key.block", Object "key:{sha256}".
func (s *Store) BlockKey(ctx context.Context, k BlockedKey, ev Event) error {
	h, err := normalizeDigest("public key SHA-256", k.PublicKeySHA256)
	if err != nil {
		return err
	}
	for _, f := range []string{k.Reason, k.Actor} {
		if err := checkText("blocked key field", f); err != nil {
			return err
		}
	}
	defaultEvent(&ev, "key.block", "key:"+h)
	if len(ev.Details) == 0 {
		ev.Details, _ = json.Marshal(map[string]string{"reason": k.Reason})
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO blocked_keys (pubkey_sha256, reason, actor, created_at) VALUES (?, ?, ?, ?)`),
			h, k.Reason, k.Actor, s.timeArg(s.now()))
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: public key %s is already blocked", ErrDuplicate, h)
		}
		if err != nil {
			return fmt.Errorf("inventory: block key %s: %w", h, err)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// UnblockKey removes a key from the blocklist with ev.
// Errors: ErrNotFound if it was not blocked.
// ev defaults: Action "key.unblock", Object "key:{sha256}".
func (s *Store) UnblockKey(ctx context.Context, pubkeySHA256 string, ev Event) error {
	h, err := normalizeDigest("public key SHA-256", pubkeySHA256)
	if err != nil {
		return err
	}
	defaultEvent(&ev, "key.unblock", "key:"+h)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM blocked_keys WHERE pubkey_sha256 = ?`), h)
		if err != nil {
			return fmt.Errorf("inventory: unblock key %s: %w", h, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: public key %s is not blocked", ErrNotFound, h)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// KeyBlocked returns the blocklist entry for a public key hash.
// Errors: ErrNotFound when the key is not blocked; ErrInvalid for a
// malformed digest.
func (s *Store) KeyBlocked(ctx context.Context, pubkeySHA256 string) (*BlockedKey, error) {
	h, err := normalizeDigest("public key SHA-256", pubkeySHA256)
	if err != nil {
		return nil, err
	}
	var r blockedRow
	err = s.db.GetContext(ctx, &r, s.q(`SELECT pubkey_sha256, reason, actor, created_at FROM blocked_keys WHERE pubkey_sha256 = ?`), h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: public key %s is not blocked", ErrNotFound, h)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: check blocked key: %w", err)
	}
	k := r.key()
	return &k, nil
}

// BlockedKeys lists the blocklist, newest first.
func (s *Store) BlockedKeys(ctx context.Context) ([]BlockedKey, error) {
	var rows []blockedRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT pubkey_sha256, reason, actor, created_at FROM blocked_keys ORDER BY created_at DESC`); err != nil {
		return nil, fmt.Errorf("inventory: list blocked keys: %w", err)
	}
	out := make([]BlockedKey, len(rows))
	for i, r := range rows {
		out[i] = r.key()
	}
	return out, nil
}
