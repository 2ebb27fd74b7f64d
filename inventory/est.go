package inventory

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// ESTToken is a one-time EST enrollment credential. The secret itself is
// never stored: SecretSHA256 is the hex SHA-256 of it, and the secret has
// 256 random bits, so a plain digest is enough (there is nothing to brute
// force the way there is with a password).
type ESTToken struct {
	ID           string    `json:"id"` // HTTP Basic user name
	Label        string    `json:"label"`
	SecretSHA256 string    `json:"-"`
	Names        []string  `json:"names"` // identifiers the token may enroll; empty: the CSR's names, checked by the profile
	ExpiresAt    time.Time `json:"expires_at"`
	UsedAt       time.Time `json:"used_at,omitzero"`
	UsedBy       string    `json:"used_by,omitempty"`
	CreatedBy    string    `json:"created_by,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

type estTokenRow struct {
	ID           string `db:"id"`
	Label        string `db:"label"`
	SecretSHA256 string `db:"secret_sha256"`
	Names        string `db:"names"`
	ExpiresAt    dbTime `db:"expires_at"`
	UsedAt       dbTime `db:"used_at"`
	UsedBy       string `db:"used_by"`
	CreatedBy    string `db:"created_by"`
	CreatedAt    dbTime `db:"created_at"`
}

func (r *estTokenRow) token() (*ESTToken, error) {
	t := &ESTToken{ID: r.ID, Label: r.Label, SecretSHA256: r.SecretSHA256, ExpiresAt: r.ExpiresAt.Time,
		UsedAt: r.UsedAt.Time, UsedBy: r.UsedBy, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.Time}
	if err := json.Unmarshal([]byte(r.Names), &t.Names); err != nil {
		return nil, fmt.Errorf("inventory: EST token %s: names: %w", r.ID, err)
	}
	return t, nil
}

// CreateESTToken stores a new token with ev in the same transaction.
// ev defaults: Action "est.token.create", Object "est-token:{id}".
func (s *Store) CreateESTToken(ctx context.Context, t *ESTToken, ev Event) error {
	for _, f := range []string{t.ID, t.Label, t.SecretSHA256} {
		if f == "" {
			return fmt.Errorf("%w: EST token needs an id, a label and a secret digest", ErrInvalid)
		}
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	names, err := json.Marshal(append([]string{}, t.Names...))
	if err != nil {
		return err
	}
	defaultEvent(&ev, "est.token.create", "est-token:"+t.ID)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO est_tokens (id, label, secret_sha256, names, expires_at, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			t.ID, t.Label, t.SecretSHA256, string(names), s.timeArg(t.ExpiresAt), t.CreatedBy, s.timeArg(t.CreatedAt))
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: EST token %s exists", ErrDuplicate, t.ID)
		}
		if err != nil {
			return fmt.Errorf("inventory: create EST token: %w", err)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// UseESTToken redeems token id for label if secretSHA256 matches (compared
// in constant time), it has not expired at now and it has not been used.
// The redemption is one conditional UPDATE, so of two concurrent uses at
// most one succeeds. Errors: ErrNotFound for an unknown id, a wrong secret
// or another label (indistinguishable to the caller, on purpose);
// ErrConflict for a used or expired token.
func (s *Store) UseESTToken(ctx context.Context, id, label, secretSHA256, usedBy string, now time.Time) (*ESTToken, error) {
	var row estTokenRow
	err := s.db.GetContext(ctx, &row, s.q(`SELECT id, label, secret_sha256, names, expires_at, used_at, used_by, created_by, created_at FROM est_tokens WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: EST token", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read EST token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(row.SecretSHA256), []byte(secretSHA256)) != 1 || row.Label != label {
		return nil, fmt.Errorf("%w: EST token", ErrNotFound)
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE est_tokens SET used_at = ?, used_by = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?`),
		s.timeArg(now), usedBy, id, s.timeArg(now))
	if err != nil {
		return nil, fmt.Errorf("inventory: use EST token: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		if row.UsedAt.Valid {
			return nil, fmt.Errorf("%w: EST token already used", ErrConflict)
		}
		return nil, fmt.Errorf("%w: EST token used or expired", ErrConflict)
	}
	return row.token()
}

// ReleaseESTToken makes a token redeemed by UseESTToken usable again. The
// EST server calls it when the enrollment the token paid for was refused,
// so a typo in a CSR does not burn a device's only credential.
func (s *Store) ReleaseESTToken(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE est_tokens SET used_at = NULL, used_by = '' WHERE id = ?`), id)
	if err != nil {
		return fmt.Errorf("inventory: release EST token: %w", err)
	}
	return nil
}

// HitESTRate counts one request by client in the fixed window of length
// window containing now, and returns the count including this one and the
// end of the window. The upsert is one statement, so replicas sharing the
// database share the count.
func (s *Store) HitESTRate(ctx context.Context, client string, window time.Duration, now time.Time) (int64, time.Time, error) {
	if window <= 0 {
		return 0, time.Time{}, fmt.Errorf("%w: rate window must be positive", ErrInvalid)
	}
	sec := int64(window / time.Second)
	if sec < 1 {
		sec = 1
	}
	win := now.Unix() / sec
	var hits int64
	err := s.db.GetContext(ctx, &hits, s.q(`INSERT INTO est_rate (client, win, hits) VALUES (?, ?, 1)
		ON CONFLICT (client) DO UPDATE SET
			hits = CASE WHEN est_rate.win = excluded.win THEN est_rate.hits + 1 ELSE 1 END,
			win = excluded.win
		RETURNING hits`), client, win)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("inventory: EST rate: %w", err)
	}
	return hits, time.Unix((win+1)*sec, 0), nil
}

// PutESTPoolKeys adds sealed pre-generated keys to label's pool.
func (s *Store) PutESTPoolKeys(ctx context.Context, label, keyType string, sealed [][]byte) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		for _, k := range sealed {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO est_pool_keys (label, key_type, sealed, created_at) VALUES (?, ?, ?, ?)`),
				label, keyType, k, s.timeArg(s.now())); err != nil {
				return fmt.Errorf("inventory: put EST pool key: %w", err)
			}
		}
		return nil
	})
}

// ClaimESTPoolKey removes and returns one sealed key from label's pool, in
// one statement: two replicas never get the same key, and a claimed key no
// longer rests in the database. ErrNotFound when the pool is empty.
func (s *Store) ClaimESTPoolKey(ctx context.Context, label, keyType string) ([]byte, error) {
	lock := ""
	if s.dialect == DialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var sealed []byte
	err := s.db.GetContext(ctx, &sealed, s.q(`DELETE FROM est_pool_keys WHERE id = (
		SELECT id FROM est_pool_keys WHERE label = ? AND key_type = ? ORDER BY id LIMIT 1`+lock+`) RETURNING sealed`), label, keyType)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: EST key pool %s is empty", ErrNotFound, label)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: claim EST pool key: %w", err)
	}
	return sealed, nil
}

// CountESTPoolKeys returns how many keys label's pool holds.
func (s *Store) CountESTPoolKeys(ctx context.Context, label, keyType string) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM est_pool_keys WHERE label = ? AND key_type = ?`), label, keyType)
	if err != nil {
		return 0, fmt.Errorf("inventory: count EST pool keys: %w", err)
	}
	return n, nil
}
