package enroll_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory"
)

// testApproval: a held label answers 202 + Retry-After until an operator
// approves; the device's retry with the same CSR then gets the
// certificate, and a later retry gets the same certificate again.
func testApproval(t *testing.T, b *base) {
	st := b.store
	{
		{
			e := newEnv(t, b, nil)
			ctx := context.Background()
			der, _ := csr(t, "held-dev")
			u, p := e.token("held")
			c := e.client(nil)
			r := post(t, c, e.url("/held/simpleenroll"), u, p, b64(der), nil)
			if r.code != 202 || r.hdr.Get("Retry-After") == "" {
				t.Fatalf("first request = %d %q, want 202 with Retry-After", r.code, r.body)
			}
			if r = post(t, c, e.url("/held/simpleenroll"), u, p, b64(der), nil); r.code != 202 {
				t.Fatalf("retry before approval = %d, want 202", r.code)
			}
			all, err := st.ESTPendings(ctx, "pending")
			var pend []inventory.ESTPending
			for _, p := range all {
				if p.Label == "held" { // other tests hold requests on their own labels
					pend = append(pend, p)
				}
			}
			if err != nil || len(pend) != 1 {
				t.Fatalf("pending = %v, %v", pend, err)
			}
			if err := st.DecideESTPending(ctx, pend[0].ID, "approved", "operator", inventory.Event{Actor: "operator", Protocol: "cli", Time: time.Now()}); err != nil {
				t.Fatal(err)
			}
			first := post(t, c, e.url("/held/simpleenroll"), "", "", b64(der), nil)
			if first.code != 200 {
				t.Fatalf("retry after approval = %d %s", first.code, first.body)
			}
			again := post(t, c, e.url("/held/simpleenroll"), "", "", b64(der), nil)
			if again.code != 200 || again.body != first.body {
				t.Fatalf("second pick-up = %d, same=%v", again.code, again.body == first.body)
			}
		}
	}
}

// testKeyPool: the pool fills in the background, a claim takes a sealed
// key out of the store, and an empty pool still serves (cold) and is
// recorded as an event.
func testKeyPool(t *testing.T, b *base) {
	st := b.store
	e := newEnv(t, b, func(c *enroll.Config) {
		c.Labels["kp"] = enroll.Label{Profile: "device", Tokens: true, ServerKeyGen: &enroll.PoolConfig{KeyType: "EC-P256", Size: 10}}
	})
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := st.CountESTPoolKeys(ctx, "kp", "EC-P256")
		if err != nil {
			t.Fatal(err)
		}
		if n >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool holds %d keys after 30 s, want 10", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Keys rest sealed: a stored row is not a PKCS#8 key.
	sealed, err := st.ClaimESTPoolKey(ctx, "kp", "EC-P256")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParsePKCS8PrivateKey(sealed); err == nil {
		t.Fatal("a pooled key is stored unsealed")
	}
	for i := 0; i < 12; i++ {
		der, _ := csr(t, "skg")
		u, p := e.token("kp")
		if r := post(t, e.client(nil), e.url("/kp/serverkeygen"), u, p, b64(der), nil); r.code != 200 {
			t.Fatalf("serverkeygen %d = %d %s", i, r.code, r.body)
		}
		evs, err := st.Events(ctx, inventory.EventFilter{Action: "est.serverkeygen", Actor: "est-token:" + u})
		if err != nil || len(evs) != 1 {
			t.Errorf("serverkeygen %d: %d est.serverkeygen events (%v), want 1", i, len(evs), err)
		}
	}
	// The refill runs concurrently with the claims; an empty pool is
	// likely but not certain, so only the refills are required.
	evs, err := st.Events(ctx, inventory.EventFilter{Action: "est.pool.refill", Object: "est-pool:kp"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 2 {
		t.Errorf("%d refill events, want at least 2 (initial fill and the one at 20%%)", len(evs))
	}
}
