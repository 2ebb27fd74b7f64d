package enroll_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"strings"
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
			// "The certificate": one for the held CSR's key and name, and
			// the held request now names it.
			certs, err := enroll.ParseCertsOnly(mustB64(t, first.body))
			if err != nil || len(certs) != 1 {
				t.Fatalf("pick-up body: %d certificates, %v", len(certs), err)
			}
			req, _ := x509.ParseCertificateRequest(der)
			if pk, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(req.PublicKey) || certs[0].Subject.CommonName != "held-dev" {
				t.Fatalf("picked-up certificate %s is not for the held CSR", certs[0].Subject)
			}
			if p, err := st.ESTPendingByCSR(ctx, "held", pend[0].CSRSHA256); err != nil || p.Status != "issued" || p.CertSerial != certs[0].SerialNumber.Text(16) {
				t.Fatalf("held request after pick-up: %+v %v, want issued with serial %x", p, err, certs[0].SerialNumber)
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
	// ... and out of the store: one fewer (at 9 of 10 no refill starts).
	if n, err := st.CountESTPoolKeys(ctx, "kp", "EC-P256"); err != nil || n != 9 {
		t.Fatalf("after one claim the pool holds %d keys (%v), want 9", n, err)
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
	// The refill runs concurrently with the claims and is only kicked by
	// them, so wait (bounded) for its event rather than expect it done.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		evs, err := st.Events(ctx, inventory.EventFilter{Action: "est.pool.refill", Object: "est-pool:kp"})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d refill events, want at least 2 (initial fill and the one at 20%%)", len(evs))
		}
	}

	// An empty pool still serves, with a fresh key, and says so in an
	// est.pool.empty event. Empty it through the store first; a refill
	// kicked by the claims above may still be adding keys, so drain and
	// try again until a request found it empty (bounded).
	emptyEvents := func() int {
		t.Helper()
		evs, err := st.Events(ctx, inventory.EventFilter{Action: "est.pool.empty", Object: "est-pool:kp"})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	before := emptyEvents()
	for attempt := 0; ; attempt++ {
		for {
			if _, err := st.ClaimESTPoolKey(ctx, "kp", "EC-P256"); errors.Is(err, inventory.ErrNotFound) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
		der, _ := csr(t, "cold")
		u, p := e.token("kp")
		if r := post(t, e.client(nil), e.url("/kp/serverkeygen"), u, p, b64(der), nil); r.code != 200 || !strings.Contains(r.body, "application/pkcs8") {
			t.Fatalf("serverkeygen on an empty pool = %d %s", r.code, r.body)
		}
		if emptyEvents() > before {
			break
		}
		if attempt == 10 {
			t.Fatal("serverkeygen on a drained pool recorded no est.pool.empty event")
		}
	}
}
