package inventory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Roles of the web UI and admin API.
const (
	RoleAdmin    = "admin"    // everything, including users and tokens
	RoleOperator = "operator" // read, revoke, label, run discovery
	RoleViewer   = "viewer"   // read certificates, issuers, discovery
	RoleAuditor  = "auditor"  // read the audit log only
)

// ValidRole reports whether r is one of the four roles.
func ValidRole(r string) bool {
	switch r {
	case RoleAdmin, RoleOperator, RoleViewer, RoleAuditor:
		return true
	}
	return false
}

// APIToken is a stored bearer token; the secret itself is never stored,
// only its SHA-256 (the secret is 256 random bits, so a fast hash is
// enough: there is nothing to brute-force).
type APIToken struct {
	ID        string `db:"id" json:"id"`
	Role      string `db:"role" json:"role"`
	Label     string `db:"label" json:"label"`
	CreatedBy string `db:"created_by" json:"created_by"`
}

const tokenPrefix = "mica_"

// CreateAPIToken stores a new token with role and returns the bearer
// string ("mica_<id>_<secret>"), which is shown once and never again.
// The creation is audited in the same transaction.
//
// Errors: ErrInvalid for an unknown role.
func (s *Store) CreateAPIToken(ctx context.Context, role, label string, ev Event) (token string, t *APIToken, err error) {
	if !ValidRole(role) {
		return "", nil, fmt.Errorf("%w: unknown role %q (admin, operator, viewer, auditor)", ErrInvalid, truncateForError(role))
	}
	if err := checkText("label", label); err != nil {
		return "", nil, err
	}
	var idb [8]byte
	var secret [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", nil, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", nil, err
	}
	t = &APIToken{ID: hex.EncodeToString(idb[:]), Role: role, Label: label, CreatedBy: ev.Actor}
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(sec))
	defaultEvent(&ev, "token.create", "token:"+t.ID)
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO api_tokens (id, secret_sha256, role, label, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`), t.ID, hex.EncodeToString(sum[:]), role, label, t.CreatedBy, s.timeArg(s.now())); err != nil {
			return fmt.Errorf("inventory: store API token: %w", err)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
	if err != nil {
		return "", nil, err
	}
	return tokenPrefix + t.ID + "_" + sec, t, nil
}

// AuthenticateAPIToken returns the live token a bearer string names, after
// comparing the secret's hash in constant time.
//
// Errors: ErrNotFound for anything that is not a live token (malformed,
// unknown, wrong secret, revoked) — callers answer 401 without saying which.
func (s *Store) AuthenticateAPIToken(ctx context.Context, bearer string) (*APIToken, error) {
	rest, ok := strings.CutPrefix(bearer, tokenPrefix)
	id, sec, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 || len(id) != 16 || len(sec) < 40 || len(sec) > 64 {
		return nil, fmt.Errorf("%w: API token", ErrNotFound)
	}
	var row struct {
		APIToken
		Hash string `db:"secret_sha256"`
	}
	err := s.db.GetContext(ctx, &row, s.q(`SELECT id, role, label, created_by, secret_sha256 FROM api_tokens
		WHERE id = ? AND revoked_at IS NULL`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: API token", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read API token: %w", err)
	}
	sum := sha256.Sum256([]byte(sec))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(row.Hash)) != 1 {
		return nil, fmt.Errorf("%w: API token", ErrNotFound)
	}
	t := row.APIToken
	return &t, nil
}
