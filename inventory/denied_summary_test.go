package inventory_test

import (
	"context"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/denials"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// A denial summary written by inventory/denials counts as the denials it
// stands for: in the auth-failure alert's per-source count and in the
// mica_denied_total counters (by kind), next to single denied events.
func TestDenialSummariesCount(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
			clock := t0.Add(90 * time.Second)
			_, base, err := s.EventCountsSince(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			sum := denials.New(s, denials.Options{Now: func() time.Time { return clock }})
			clock = t0.Add(10 * time.Second)
			for range 500 {
				sum.Record("api", "198.51.100.9", "api.bearer")
			}
			for range 7 {
				sum.Record("acme", "198.51.100.9", "acme.jws.malformed")
			}
			sum.Record("api", "203.0.113.1", "api.bearer")
			clock = t0.Add(61 * time.Second)
			if n := sum.Flush(ctx); n != 3 {
				t.Fatalf("Flush = %d events, want 3", n)
			}
			if _, err := s.AppendEvent(ctx, inventory.Event{Time: clock, Actor: "a", Action: "api.access", Source: "203.0.113.1", Outcome: "denied"}); err != nil {
				t.Fatal(err)
			}
			got, err := s.DeniedBySource(ctx, t0)
			if err != nil {
				t.Fatal(err)
			}
			want := []inventory.SourceCount{{Source: "198.51.100.9", Count: 507}, {Source: "203.0.113.1", Count: 2}}
			if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
				t.Errorf("DeniedBySource = %+v, want %+v", got, want)
			}
			counts, _, err := s.EventCountsSince(ctx, base)
			if err != nil {
				t.Fatal(err)
			}
			by := map[string]int64{}
			for _, c := range counts {
				if c.Outcome == "denied" {
					by[c.Action] += c.Count
				}
			}
			if by["api.bearer"] != 501 || by["acme.jws.malformed"] != 7 || by["api.access"] != 1 || by[inventory.ActionDeniedSummary] != 0 {
				t.Errorf("denied counts by action = %v, want api.bearer 501, acme.jws.malformed 7, api.access 1", by)
			}
		})
	}
}
