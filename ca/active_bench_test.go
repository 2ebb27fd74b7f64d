package ca

import (
	"testing"

	"github.com/mica-pki/mica/inventory/inventorytest"
)

// BenchmarkActiveIssuer measures what reading the active issuer costs
// each issuance now that it can change while running: cur() (pointer load,
// clock read, schedule check) against the bare pointer load.
func BenchmarkActiveIssuer(b *testing.B) {
	e := newKeyEnv(b, inventorytest.SQLite(b))
	c, err := New(b.Context(), Options{Store: e.st, Keys: e.meter, URLs: testURLs, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			_ = c.active.Load()
		}
	})
	b.Run("cur", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = c.cur()
			}
		})
	})
	b.Run("load-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = c.active.Load()
			}
		})
	})
}
