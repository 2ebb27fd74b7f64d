package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// ErrLastAdmin refuses a change that would leave no enabled admin account
// (deleting, disabling or demoting the last one): nobody could then manage
// users from the UI. It wraps ErrConflict.
var ErrLastAdmin = fmt.Errorf("%w: this is the last enabled admin account", ErrConflict)

// SetUserRole changes a user's role and ends all of the user's sessions,
// so the new role applies at once (audited, action user.role, details
// {"old", "new"}).
// Errors: ErrInvalid for an unknown role; ErrNotFound; ErrLastAdmin.
func (s *Store) SetUserRole(ctx context.Context, name, role string, ev Event) error {
	if !ValidRole(role) {
		return fmt.Errorf("%w: role must be admin, operator, viewer or auditor", ErrInvalid)
	}
	return s.changeUser(ctx, name, "user.role", ev, func(tx *sqlx.Tx, old userRow) (map[string]any, error) {
		if old.Role == RoleAdmin && role != RoleAdmin {
			if err := s.guardLastAdmin(ctx, tx, name); err != nil {
				return nil, err
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE users SET role = ? WHERE name = ?`), role, name); err != nil {
			return nil, fmt.Errorf("inventory: set role of %s: %w", name, err)
		}
		return map[string]any{"old": old.Role, "new": role}, nil
	})
}

// SetUserPassword replaces a user's password hash, clears the login
// throttle and ends the user's sessions (audited, action user.password;
// the hash is never in the event).
// Errors: ErrInvalid for an empty hash; ErrNotFound.
func (s *Store) SetUserPassword(ctx context.Context, name, hash string, ev Event) error {
	if hash == "" {
		return fmt.Errorf("%w: empty password hash", ErrInvalid)
	}
	return s.changeUser(ctx, name, "user.password", ev, func(tx *sqlx.Tx, _ userRow) (map[string]any, error) {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = NULL WHERE name = ?`),
			hash, name); err != nil {
			return nil, fmt.Errorf("inventory: set password of %s: %w", name, err)
		}
		return map[string]any{}, nil
	})
}

// SetUserDisabled disables (no login, sessions ended) or re-enables a
// user (audited, action user.disable or user.enable).
// Errors: ErrNotFound; ErrLastAdmin when disabling the last enabled admin.
func (s *Store) SetUserDisabled(ctx context.Context, name string, disabled bool, ev Event) error {
	action := "user.enable"
	if disabled {
		action = "user.disable"
	}
	return s.changeUser(ctx, name, action, ev, func(tx *sqlx.Tx, old userRow) (map[string]any, error) {
		var at any
		if disabled {
			if old.Role == RoleAdmin && !old.DisabledAt.Valid {
				if err := s.guardLastAdmin(ctx, tx, name); err != nil {
					return nil, err
				}
			}
			at = s.timeArg(s.now())
			if old.DisabledAt.Valid {
				at = s.timeArg(old.DisabledAt.Time)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE users SET disabled_at = ? WHERE name = ?`), at, name); err != nil {
			return nil, fmt.Errorf("inventory: disable %s: %w", name, err)
		}
		return map[string]any{"old_disabled": old.DisabledAt.Valid, "new_disabled": disabled}, nil
	})
}

// DeleteUser removes a user and the user's sessions (audited, action
// user.delete). Audit events keep naming the user.
// Errors: ErrNotFound; ErrLastAdmin.
func (s *Store) DeleteUser(ctx context.Context, name string, ev Event) error {
	return s.changeUser(ctx, name, "user.delete", ev, func(tx *sqlx.Tx, old userRow) (map[string]any, error) {
		if old.Role == RoleAdmin && !old.DisabledAt.Valid {
			if err := s.guardLastAdmin(ctx, tx, name); err != nil {
				return nil, err
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM users WHERE name = ?`), name); err != nil {
			return nil, fmt.Errorf("inventory: delete user %s: %w", name, err)
		}
		return map[string]any{"role": old.Role}, nil
	})
}

// changeUser runs fn on the locked user row in one transaction, then ends
// the user's sessions and appends ev with fn's details.
func (s *Store) changeUser(ctx context.Context, name, action string, ev Event,
	fn func(tx *sqlx.Tx, old userRow) (map[string]any, error)) error {
	defaultEvent(&ev, action, "user:"+name)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var old userRow
		err := tx.GetContext(ctx, &old, s.q(`SELECT name, role, password_hash, locked_until, created_at, disabled_at
			FROM users WHERE name = ?`+s.forUpdate), name)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: user %s", ErrNotFound, truncateForError(name))
		}
		if err != nil {
			return fmt.Errorf("inventory: read user: %w", err)
		}
		details, err := fn(tx, old)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE user_name = ?`), name); err != nil {
			return fmt.Errorf("inventory: end sessions of %s: %w", name, err)
		}
		if ev.Details == nil {
			ev.Details, _ = json.Marshal(details)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// guardLastAdmin fails with ErrLastAdmin unless an enabled admin other
// than name remains. On PostgreSQL it locks every enabled admin row, so
// two transactions demoting the last two admins cannot both pass; SQLite
// transactions hold the write lock already.
func (s *Store) guardLastAdmin(ctx context.Context, tx *sqlx.Tx, name string) error {
	var admins []string
	if err := tx.SelectContext(ctx, &admins, s.q(`SELECT name FROM users WHERE role = ? AND disabled_at IS NULL ORDER BY name`+s.forUpdate),
		RoleAdmin); err != nil {
		return fmt.Errorf("inventory: count admins: %w", err)
	}
	for _, a := range admins {
		if a != name {
			return nil
		}
	}
	return ErrLastAdmin
}
