package alerts_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/alerts"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestKeyLifeAlerts: key_rotation_due fires inside the rotation warning
// (and when overdue), not before it; a self-rotating class only when
// overdue; backup_overdue fires when the last successful backup.verify is
// older than the max age or missing. Every delivery is HMAC-verified by a
// receiver on 127.0.0.1, and a second evaluation — by a new engine, as
// after a restart or on another replica — sends nothing (alert_state in
// the store), on SQLite and PostgreSQL.
func TestKeyLifeAlerts(t *testing.T) {
	const day = 24 * time.Hour
	due := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	dueSubject := "key:k1@" + due.Format(time.RFC3339)
	type verify struct {
		ago     time.Duration
		outcome string
	}
	cases := []struct {
		name     string
		now      time.Time
		class    string
		status   string
		verified []verify // backup.verify events before now
		want     map[string][]string
	}{
		{name: "before the warning window: quiet", now: due.Add(-31 * day), class: "issuing",
			verified: []verify{{day, "ok"}}},
		{name: "inside the warning window: fires ahead of the due date", now: due.Add(-10 * day), class: "issuing",
			verified: []verify{{day, "ok"}}, want: map[string][]string{alerts.KindKeyRotationDue: {dueSubject}}},
		{name: "exactly at the warning boundary: fires", now: due.Add(-30 * day), class: "root",
			verified: []verify{{day, "ok"}}, want: map[string][]string{alerts.KindKeyRotationDue: {dueSubject}}},
		{name: "overdue: fires", now: due.Add(2 * day), class: "issuing",
			verified: []verify{{day, "ok"}}, want: map[string][]string{alerts.KindKeyRotationDue: {dueSubject}}},
		{name: "self-rotating class inside the window: quiet", now: due.Add(-day), class: "ocsp-responder",
			verified: []verify{{day, "ok"}}},
		{name: "self-rotating class overdue: fires", now: due.Add(time.Hour), class: "ocsp-responder",
			verified: []verify{{day, "ok"}}, want: map[string][]string{alerts.KindKeyRotationDue: {dueSubject}}},
		{name: "retired key overdue: quiet", now: due.Add(day), class: "issuing", status: inventory.KeyRetired,
			verified: []verify{{day, "ok"}}},
		{name: "backup verified 8 days ago: overdue", now: due.Add(-60 * day), class: "issuing",
			verified: []verify{{8 * day, "ok"}},
			want:     map[string][]string{alerts.KindBackupOverdue: {"backup:" + due.Add(-68*day).Format(time.RFC3339)}}},
		{name: "never verified: overdue", now: due.Add(-60 * day), class: "issuing",
			want: map[string][]string{alerts.KindBackupOverdue: {"backup:never"}}},
		{name: "only a failed verification: overdue", now: due.Add(-60 * day), class: "issuing",
			verified: []verify{{time.Hour, "error"}}, want: map[string][]string{alerts.KindBackupOverdue: {"backup:never"}}},
		{name: "newest verification failed, an older one is recent enough", now: due.Add(-60 * day), class: "issuing",
			verified: []verify{{2 * day, "ok"}, {time.Hour, "error"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for backend, st := range inventorytest.Stores(t) {
				t.Run(backend, func(t *testing.T) {
					ctx := context.Background()
					d := due
					k := inventory.Key{ID: "k1", Class: tc.class, Backend: "fake", URI: "fake:k1", Algorithm: "EC-P256",
						Created: due.Add(-365 * day), ActivateAt: due.Add(-365 * day), RotationDue: &d, Status: tc.status}
					if err := st.PutKey(ctx, &k, inventory.Event{Actor: "test"}); err != nil {
						t.Fatal(err)
					}
					for _, v := range tc.verified {
						if _, err := st.AppendEvent(ctx, inventory.Event{Time: tc.now.Add(-v.ago), Actor: "op", Action: "backup.verify",
							Protocol: "cli", Object: "backup:x.age", Outcome: v.outcome}); err != nil {
							t.Fatal(err)
						}
					}
					rc := &hmacReceiver{t: t, secret: []byte("keylife-secret")}
					srv := httptest.NewServer(rc)
					defer srv.Close()
					cfg := alerts.Config{Webhooks: []alerts.Webhook{{URL: srv.URL, Secret: rc.secret}}, Backoff: time.Millisecond,
						KeyLife: alerts.KeyLifeConfig{RotationWarning: 30 * day, BackupMaxAge: 7 * day,
							SelfRotating: map[string]bool{"ocsp-responder": true}}}
					eng := alerts.New(cfg, st, nil)
					alerts.SetClock(eng, func() time.Time { return tc.now })
					if _, err := eng.Evaluate(ctx); err != nil {
						t.Fatal(err)
					}
					got := map[string][]string{}
					for _, a := range rc.take() {
						for _, it := range a.Items {
							got[a.Kind] = append(got[a.Kind], it.Subject)
							// Durations read as configured ("10d", "7d"), not "240h0m0s".
							if strings.Contains(it.Detail, "h0m") {
								t.Errorf("%s detail %q shows a Go duration", a.Kind, it.Detail)
							}
							if a.Kind == alerts.KindKeyRotationDue && (it.KeyID != "k1" || !it.Due.Equal(due) || it.Detail == "") {
								t.Errorf("key_rotation_due item = %+v, want key k1 due %s with a detail", it, due)
							}
						}
					}
					for kind, subs := range tc.want {
						if !slices.Equal(got[kind], subs) {
							t.Errorf("Evaluate() %s = %q, want %q", kind, got[kind], subs)
						}
					}
					for kind, subs := range got {
						if _, ok := tc.want[kind]; !ok {
							t.Errorf("Evaluate() sent unexpected %s %q", kind, subs)
						}
					}

					// A restarted engine (or another replica) reads the
					// same alert_state: nothing is sent again ...
					again := alerts.New(cfg, st, nil)
					alerts.SetClock(again, func() time.Time { return tc.now.Add(time.Hour) })
					if sent, err := again.Evaluate(ctx); err != nil || len(sent) != 0 {
						t.Errorf("second Evaluate() = %+v, %v; want nothing sent", sent, err)
					}
					// ... until RepeatAfter (24h) has passed.
					alerts.SetClock(again, func() time.Time { return tc.now.Add(25 * time.Hour) })
					if _, err := again.Evaluate(ctx); err != nil {
						t.Fatal(err)
					}
					rc.take()
					if tc.want != nil {
						evs, err := st.Events(ctx, inventory.EventFilter{Action: "alert.send"})
						if err != nil {
							t.Fatal(err)
						}
						if len(evs) < 2 {
							t.Errorf("alert.send events = %d, want the first delivery and the repeat after 24h", len(evs))
						}
					}
				})
			}
		})
	}
}

// TestKeyLifeAlertsOff: an engine without a key policy (zero
// KeyLifeConfig) reports neither kind.
func TestKeyLifeAlertsOff(t *testing.T) {
	ctx := context.Background()
	st := inventorytest.SQLite(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	d := now.Add(-time.Hour)
	if err := st.PutKey(ctx, &inventory.Key{ID: "k1", Class: "issuing", Backend: "fake", URI: "fake:k1", Algorithm: "EC-P256",
		RotationDue: &d}, inventory.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	rc := &hmacReceiver{t: t, secret: []byte("s")}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	eng := alerts.New(alerts.Config{Webhooks: []alerts.Webhook{{URL: srv.URL, Secret: rc.secret}}}, st, nil)
	alerts.SetClock(eng, func() time.Time { return now })
	if sent, err := eng.Evaluate(ctx); err != nil || len(sent) != 0 {
		t.Errorf("Evaluate() = %+v, %v; want nothing without a key policy", sent, err)
	}
}
