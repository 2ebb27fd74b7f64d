package ca

import (
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// TestNewerIssuer: a rotation's issuer supersedes the one it replaces
// even when both certificates start in the same second (an intermediate
// signed right after `mica init` is clamped to the root's notBefore), so
// issuance moves to it deterministically.
func TestNewerIssuer(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	is := func(id string, nb, created time.Time) inventory.Issuer {
		return inventory.Issuer{ID: id, NotBefore: nb, CreatedAt: created}
	}
	cases := []struct {
		name string
		a, b inventory.Issuer
		want bool
	}{
		{"starts later", is("b", t0.Add(time.Second), t0), is("a", t0, t0.Add(time.Hour)), true},
		{"starts earlier", is("b", t0, t0.Add(time.Hour)), is("a", t0.Add(time.Second), t0), false},
		{"same start, recorded later", is("issuing", t0, t0.Add(time.Second)), is("issuing-2", t0, t0), true},
		{"same start, recorded earlier", is("issuing-2", t0, t0), is("issuing", t0, t0.Add(time.Second)), false},
		{"same start and record, by ID", is("issuing-2", t0, t0), is("issuing", t0, t0), true},
		{"itself", is("issuing", t0, t0), is("issuing", t0, t0), false},
	}
	for _, tc := range cases {
		if got := newerIssuer(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: newerIssuer(%s, %s) = %v, want %v", tc.name, tc.a.ID, tc.b.ID, got, tc.want)
		}
	}
}
