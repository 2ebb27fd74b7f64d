package enroll

import (
	"context"
	"crypto/ecdsa"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestPoolEmptyAndRefill: a request that finds the pool empty still gets
// a key, and counts, audits and triggers a refill, which fills the pool to
// its size with keys that unseal under a sealer opened again from the
// backend (as another replica would).
func TestPoolEmptyAndRefill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := inventorytest.SQLite(t)
	uri, pass := hsmtest.SoftKMS(t)
	keys, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: pass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	sl, err := openSealer(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := newMetrics(nil)
	s := &Server{store: st, log: slog.Default(), now: time.Now, m: m, sealer: sl}
	l := &label{name: "p", Label: Label{Profile: "device", ServerKeyGen: &PoolConfig{KeyType: "EC-P256", Size: 5}}}
	p := newKeyPool(s, l)

	k, warm, err := p.take(ctx)
	if err != nil || warm {
		t.Fatalf("take from empty pool = warm %v, %v; want a cold key", warm, err)
	}
	if _, ok := k.(*ecdsa.PrivateKey); !ok {
		t.Fatalf("key type %T, want EC", k)
	}
	if got := testutil.ToFloat64(m.empty.WithLabelValues("p")); got != 1 {
		t.Errorf("empty counter = %v, want 1", got)
	}
	if evs, _ := st.Events(ctx, inventory.EventFilter{Action: "est.pool.empty"}); len(evs) != 1 {
		t.Errorf("%d est.pool.empty events, want 1", len(evs))
	}
	if err := p.refill(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.CountESTPoolKeys(ctx, "p", "EC-P256"); n != 5 {
		t.Errorf("pool after refill holds %d, want 5", n)
	}
	if got := testutil.ToFloat64(m.refills.WithLabelValues("p")); got != 1 {
		t.Errorf("refill counter = %v, want 1", got)
	}
	// Another replica derives the same sealing key from the backend.
	sl2, err := openSealer(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	s.sealer = sl2
	if _, warm, err := p.take(ctx); err != nil || !warm {
		t.Fatalf("take after refill = warm %v, %v; want a pooled key", warm, err)
	}
	// Above 20% left, refill does nothing.
	if err := p.refill(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.refills.WithLabelValues("p")); got != 1 {
		t.Errorf("refill counter after a refill above the mark = %v, want 1", got)
	}
}
