package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Audit actions the per-source login throttle reads and writes.
const (
	// ActionLogin is a UI password check; outcome "denied" is a failure.
	ActionLogin = "ui.login"
	// ActionLoginThrottled is a login refused, unchecked, because its
	// source address failed too often (not counted as a failure itself).
	ActionLoginThrottled = "ui.login.throttled"
)

// LoginSourceThrottle reports whether source (a client address, as the
// audit log records it) has failed at least limit UI logins, across all
// accounts, in the window ending at now. It returns the time at which
// the source may try again, or the zero time when it is not throttled.
//
// The failures are the audit log's own "ui.login"/"denied" events, so
// every replica sees the same count without extra state; the query reads
// the events_action_at index (action, at) and only this window's rows.
func (s *Store) LoginSourceThrottle(ctx context.Context, source string, limit int, window time.Duration, now time.Time) (time.Time, error) {
	if limit <= 0 || window <= 0 {
		return time.Time{}, fmt.Errorf("%w: login throttle needs a positive limit and window", ErrInvalid)
	}
	// The limit-th newest failure: once it leaves the window, fewer than
	// limit remain and the source may try again.
	var at dbTime
	err := s.db.GetContext(ctx, &at, s.q(fmt.Sprintf(`SELECT at FROM events
		WHERE action = ? AND at >= ? AND outcome = ? AND source = ?
		ORDER BY at DESC LIMIT 1 OFFSET %d`, limit-1)),
		ActionLogin, s.timeArg(now.Add(-window)), "denied", source)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("inventory: login failures from source: %w", err)
	}
	return at.Time.Add(window), nil
}
