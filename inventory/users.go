package inventory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jmoiron/sqlx"
)

// User is a web UI account. PasswordHash is produced and checked by the
// web package (bcrypt); the store never sees a password.
type User struct {
	Name         string     `json:"name"`
	Role         string     `json:"role"`
	PasswordHash string     `json:"-"`
	LockedUntil  *time.Time `json:"locked_until,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	DisabledAt   *time.Time `json:"disabled_at,omitempty"` // set: no login, no session (users_admin.go)
}

var userNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$`)

// Login throttling: after MaxFailedLogins wrong passwords in a row the
// account refuses logins for LoginLockout.
const (
	MaxFailedLogins = 5
	LoginLockout    = time.Minute
)

// CreateUser stores a user (audited, action user.create).
// Errors: ErrInvalid for a bad name, role or empty hash; ErrDuplicate.
func (s *Store) CreateUser(ctx context.Context, u User, ev Event) error {
	if !userNamePattern.MatchString(u.Name) || !ValidRole(u.Role) || u.PasswordHash == "" {
		return fmt.Errorf("%w: user needs a name (letters, digits, ._@-), a role and a password hash", ErrInvalid)
	}
	defaultEvent(&ev, "user.create", "user:"+u.Name)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?)`),
			u.Name, u.PasswordHash, u.Role, s.timeArg(s.now()))
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: user %s exists", ErrDuplicate, u.Name)
		}
		if err != nil {
			return fmt.Errorf("inventory: create user: %w", err)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

type userRow struct {
	Name         string `db:"name"`
	Role         string `db:"role"`
	PasswordHash string `db:"password_hash"`
	LockedUntil  dbTime `db:"locked_until"`
	CreatedAt    dbTime `db:"created_at"`
	DisabledAt   dbTime `db:"disabled_at"`
}

func (r userRow) user() User {
	return User{Name: r.Name, Role: r.Role, PasswordHash: r.PasswordHash, LockedUntil: r.LockedUntil.ptr(), CreatedAt: r.CreatedAt.Time,
		DisabledAt: r.DisabledAt.ptr()}
}

// User returns one user. Errors: ErrNotFound.
func (s *Store) User(ctx context.Context, name string) (*User, error) {
	var r userRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT name, role, password_hash, locked_until, created_at, disabled_at FROM users WHERE name = ?`), name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: user", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read user: %w", err)
	}
	u := r.user()
	return &u, nil
}

// Users lists all users by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	var rows []userRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT name, role, password_hash, locked_until, created_at, disabled_at FROM users ORDER BY name LIMIT 1000`); err != nil {
		return nil, fmt.Errorf("inventory: list users: %w", err)
	}
	out := make([]User, len(rows))
	for i, r := range rows {
		out[i] = r.user()
	}
	return out, nil
}

// LoginResult records a password check: ok resets the failure count, a
// failure increments it and locks the account at MaxFailedLogins.
func (s *Store) LoginResult(ctx context.Context, name string, ok bool) error {
	var err error
	if ok {
		_, err = s.db.ExecContext(ctx, s.q(`UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = ?`), name)
	} else {
		_, err = s.db.ExecContext(ctx, s.q(`UPDATE users SET failed_logins = failed_logins + 1,
			locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END WHERE name = ?`),
			MaxFailedLogins, s.timeArg(s.now().Add(LoginLockout)), name)
	}
	if err != nil {
		return fmt.Errorf("inventory: record login: %w", err)
	}
	return nil
}

// CreateSession starts a session for user lasting ttl and returns the
// cookie value (256 random bits); only its SHA-256 is stored.
func (s *Store) CreateSession(ctx context.Context, user string, ttl time.Duration) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO sessions (id_sha256, user_name, expires_at, created_at) VALUES (?, ?, ?, ?)`),
		sessionKey(tok), user, s.timeArg(now.Add(ttl)), s.timeArg(now)); err != nil {
		return "", fmt.Errorf("inventory: create session: %w", err)
	}
	// Expired sessions are swept here, by whoever logs in next.
	_, _ = s.db.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE expires_at < ?`), s.timeArg(now))
	return tok, nil
}

// SessionUser returns the user of a live session.
// Errors: ErrNotFound for an unknown or expired session.
func (s *Store) SessionUser(ctx context.Context, tok string) (*User, error) {
	var r userRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT u.name, u.role, u.password_hash, u.locked_until, u.created_at, u.disabled_at
		FROM sessions x JOIN users u ON u.name = x.user_name WHERE x.id_sha256 = ? AND x.expires_at > ? AND u.disabled_at IS NULL`),
		sessionKey(tok), s.timeArg(s.now()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: session", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read session: %w", err)
	}
	u := r.user()
	return &u, nil
}

// DeleteSession ends a session (logout).
func (s *Store) DeleteSession(ctx context.Context, tok string) error {
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE id_sha256 = ?`), sessionKey(tok))
	return err
}

func sessionKey(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}
