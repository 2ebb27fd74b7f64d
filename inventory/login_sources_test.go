package inventory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// LoginSourceThrottle counts failed logins by source across accounts in a
// sliding window, with an injected clock.
func TestLoginSourceThrottle(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
			clock := t0
			s.SetNow(func() time.Time { return clock })
			add := func(at time.Duration, action, outcome, source string) {
				clock = t0.Add(at)
				if _, err := s.AppendEvent(ctx, inventory.Event{Actor: "user:x", Action: action, Object: "user:x", Outcome: outcome,
					Protocol: "ui", Source: source}); err != nil {
					t.Fatal(err)
				}
			}
			add(0, inventory.ActionLogin, "denied", "198.51.100.1")
			add(time.Minute, inventory.ActionLogin, "denied", "198.51.100.1")
			add(2*time.Minute, inventory.ActionLogin, "ok", "198.51.100.1")              // success: not counted
			add(3*time.Minute, inventory.ActionLoginThrottled, "denied", "198.51.100.1") // throttled: not counted
			add(4*time.Minute, inventory.ActionLogin, "denied", "198.51.100.2")          // other source
			add(5*time.Minute, inventory.ActionLogin, "denied", "198.51.100.1")
			win := 15 * time.Minute
			for _, tc := range []struct {
				name   string
				source string
				limit  int
				now    time.Duration
				until  time.Duration // 0: not throttled
			}{
				{"at the limit", "198.51.100.1", 3, 6 * time.Minute, 15 * time.Minute},
				{"limit 2: second-newest leaves last", "198.51.100.1", 2, 6 * time.Minute, 16 * time.Minute},
				{"under the limit", "198.51.100.1", 4, 6 * time.Minute, 0},
				{"oldest left the window", "198.51.100.1", 3, 15*time.Minute + time.Second, 0},
				{"other source", "198.51.100.2", 2, 6 * time.Minute, 0},
				{"unknown source", "203.0.113.9", 1, 6 * time.Minute, 0},
			} {
				got, err := s.LoginSourceThrottle(ctx, tc.source, tc.limit, win, t0.Add(tc.now))
				want := time.Time{}
				if tc.until > 0 {
					want = t0.Add(tc.until)
				}
				if err != nil || !got.Equal(want) {
					t.Errorf("%s: until %v, %v; want %v", tc.name, got, err, want)
				}
			}
			if _, err := s.LoginSourceThrottle(ctx, "x", 0, win, t0); !errors.Is(err, inventory.ErrInvalid) {
				t.Errorf("zero limit = %v, want ErrInvalid", err)
			}
		})
	}
}
