package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestESTTokenOnce: of many concurrent redemptions of one token exactly
// one succeeds; a wrong secret, another label and an expired token are
// refused; a released token can be used again.
func TestESTTokenOnce(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now()
			tok := &inventory.ESTToken{ID: "est-1", Label: "default", SecretSHA256: "aa", Names: []string{"dns:a.test"}, ExpiresAt: now.Add(time.Hour)}
			if err := st.CreateESTToken(ctx, tok, inventory.Event{Actor: "test", Protocol: "cli"}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.UseESTToken(ctx, "est-1", "default", "bb", "x", now); !errors.Is(err, inventory.ErrNotFound) {
				t.Errorf("UseESTToken(wrong secret) = %v, want ErrNotFound", err)
			}
			if _, err := st.UseESTToken(ctx, "est-1", "other", "aa", "x", now); !errors.Is(err, inventory.ErrNotFound) {
				t.Errorf("UseESTToken(other label) = %v, want ErrNotFound", err)
			}
			if _, err := st.UseESTToken(ctx, "est-1", "default", "aa", "x", now.Add(2*time.Hour)); !errors.Is(err, inventory.ErrConflict) {
				t.Errorf("UseESTToken(expired) = %v, want ErrConflict", err)
			}
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := st.UseESTToken(ctx, "est-1", "default", "aa", fmt.Sprint("src", i), now)
					if err == nil {
						wins.Add(1)
						if len(got.Names) != 1 || got.Names[0] != "dns:a.test" {
							t.Errorf("token names = %v", got.Names)
						}
					} else if !errors.Is(err, inventory.ErrConflict) {
						t.Errorf("concurrent UseESTToken = %v, want ErrConflict", err)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("%d concurrent redemptions succeeded, want 1", wins.Load())
			}
			if err := st.ReleaseESTToken(ctx, "est-1"); err != nil {
				t.Fatal(err)
			}
			if _, err := st.UseESTToken(ctx, "est-1", "default", "aa", "x", now); err != nil {
				t.Errorf("UseESTToken after release = %v", err)
			}
		})
	}
}

// TestESTPoolClaims: concurrent claims never return the same key, and an
// empty pool answers ErrNotFound.
func TestESTPoolClaims(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var keys [][]byte
			for i := range 20 {
				keys = append(keys, []byte(fmt.Sprintf("sealed-%02d", i)))
			}
			if err := st.PutESTPoolKeys(ctx, "l", "EC-P256", keys); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			seen := map[string]bool{}
			var wg sync.WaitGroup
			for range 30 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					k, err := st.ClaimESTPoolKey(ctx, "l", "EC-P256")
					if errors.Is(err, inventory.ErrNotFound) {
						return
					}
					if err != nil {
						t.Errorf("ClaimESTPoolKey = %v", err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					if seen[string(k)] {
						t.Errorf("key %s claimed twice", k)
					}
					seen[string(k)] = true
				}()
			}
			wg.Wait()
			if len(seen) != 20 {
				t.Errorf("%d keys claimed by 30 claimants from a pool of 20, want 20", len(seen))
			}
			if n, _ := st.CountESTPoolKeys(ctx, "l", "EC-P256"); n != 0 {
				t.Errorf("pool holds %d after draining", n)
			}
		})
	}
}

// TestESTRate: the fixed window counts per client and starts over in the
// next window.
func TestESTRate(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Unix(1_800_000_000, 0)
			for want := int64(1); want <= 3; want++ {
				if n, _, err := st.HitESTRate(ctx, "192.0.2.1", time.Minute, now); err != nil || n != want {
					t.Fatalf("HitESTRate = %d, %v; want %d", n, err, want)
				}
			}
			if n, _, _ := st.HitESTRate(ctx, "192.0.2.2", time.Minute, now); n != 1 {
				t.Errorf("other client = %d, want 1", n)
			}
			n, until, _ := st.HitESTRate(ctx, "192.0.2.1", time.Minute, now.Add(time.Minute))
			if n != 1 || !until.After(now.Add(time.Minute)) {
				t.Errorf("next window = %d until %v, want 1", n, until)
			}
		})
	}
}
