package alerts

import (
	"context"
	"fmt"
	"time"

	"github.com/mica-pki/mica/internal/humantime"
	"github.com/mica-pki/mica/inventory"
)

// Key-lifecycle alert kinds (NIST SP 800-57 Part 1 §5.3, §8.2.2.1).
const (
	KindKeyRotationDue = "key_rotation_due"
	KindBackupOverdue  = "backup_overdue"
)

// KeyLifeConfig turns on the key-lifecycle kinds; it carries the parts of
// key_policy they need. A zero field disables its kind (so an engine built
// without a key policy reports neither).
type KeyLifeConfig struct {
	// RotationWarning: an active key whose rotation is due within this
	// (or overdue) is a key_rotation_due finding.
	RotationWarning time.Duration
	// SelfRotating classes rotate by themselves (OCSP responder keys):
	// they are reported only once their rotation is overdue, which means
	// the automatic rotation is not happening.
	SelfRotating map[string]bool
	// BackupMaxAge: no backup verified ("backup.verify" event, outcome
	// ok) within this is a backup_overdue finding.
	BackupMaxAge time.Duration
}

// RotationDue reports whether active key k is due an alert at now under a
// warning period: its rotation is due within warn, or overdue (self is
// true for a class that rotates by itself: only overdue counts). Shared
// with the key job's audit event so both agree.
func RotationDue(k inventory.Key, now time.Time, warn time.Duration, self bool) bool {
	if k.RotationDue == nil || k.Status != inventory.KeyActive {
		return false
	}
	left := k.RotationDue.Sub(now)
	if self {
		return left <= 0
	}
	return left <= warn
}

// keyRotationDue lists the active keys due for rotation. The subject
// carries the due date, so a key whose due date moves is new again.
func (e *Engine) keyRotationDue(ctx context.Context, now time.Time) ([]Item, error) {
	c := e.cfg.KeyLife
	if c.RotationWarning <= 0 {
		return nil, nil
	}
	keys, err := e.store.Keys(ctx)
	if err != nil {
		return nil, err
	}
	var out []Item
	for _, k := range keys {
		if !RotationDue(k, now, c.RotationWarning, c.SelfRotating[k.Class]) {
			continue
		}
		due := k.RotationDue.UTC()
		detail := fmt.Sprintf("%s key rotation due %s (in %s)", k.Class, due.Format(time.RFC3339), humantime.Format(due.Sub(now).Round(time.Minute)))
		if !due.After(now) {
			detail = fmt.Sprintf("%s key rotation overdue since %s (%s ago)", k.Class, due.Format(time.RFC3339), humantime.Format(now.Sub(due).Round(time.Minute)))
		}
		out = append(out, Item{Subject: "key:" + k.ID + "@" + due.Format(time.RFC3339), KeyID: k.ID, IssuerID: k.IssuerID,
			Due: due, Detail: detail})
	}
	return out, nil
}

// LastVerifiedBackup returns the time of the newest successful
// "backup.verify" audit event (written by `mica backup verify`), or zero.
func LastVerifiedBackup(ctx context.Context, st interface {
	Events(ctx context.Context, f inventory.EventFilter) ([]inventory.Event, error)
}) (time.Time, error) {
	f := inventory.EventFilter{Action: "backup.verify", Limit: 50}
	for {
		evs, err := st.Events(ctx, f)
		if err != nil {
			return time.Time{}, err
		}
		for _, ev := range evs {
			if ev.Outcome == "ok" {
				return ev.Time, nil
			}
		}
		if len(evs) < f.Limit {
			return time.Time{}, nil
		}
		f.Before = evs[len(evs)-1].ID
	}
}

// backupOverdue reports a missing or too old verified backup. The subject
// names the last verified backup, so each overdue period is new once and
// then repeats only after RepeatAfter.
func (e *Engine) backupOverdue(ctx context.Context, now time.Time) ([]Item, error) {
	maxAge := e.cfg.KeyLife.BackupMaxAge
	if maxAge <= 0 {
		return nil, nil
	}
	last, err := LastVerifiedBackup(ctx, e.store)
	if err != nil {
		return nil, err
	}
	if !last.IsZero() && now.Sub(last) <= maxAge {
		return nil, nil
	}
	if last.IsZero() {
		return []Item{{Subject: "backup:never",
			Detail: fmt.Sprintf("no backup has ever been verified (max age %s); run 'mica backup verify FILE'", humantime.Format(maxAge))}}, nil
	}
	last = last.UTC()
	return []Item{{Subject: "backup:" + last.Format(time.RFC3339), Due: last.Add(maxAge),
		Detail: fmt.Sprintf("last verified backup %s is %s old (max age %s); run 'mica backup verify FILE'",
			last.Format(time.RFC3339), humantime.Format(now.Sub(last).Round(time.Minute)), humantime.Format(maxAge))}}, nil
}
