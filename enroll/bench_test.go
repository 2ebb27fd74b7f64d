package enroll_test

import (
	"context"
	"testing"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// BenchmarkEST measures, in one run on one store: the raw issuance rate
// (ca.Issue), simpleenroll over one keep-alive TLS connection with a
// client certificate, and serverkeygen with RSA-2048 keys from a warm
// pool and from an empty pool (generated on demand).
//
//	go test -run '^$' -bench BenchmarkEST -benchtime 100x ./enroll/
func BenchmarkEST(b *testing.B) {
	const warmSize = 300
	e := newEnv(b, newBase(b, inventorytest.SQLite(b)), func(c *enroll.Config) {
		c.Labels["warm"] = enroll.Label{Profile: "device", ClientCerts: true, ServerKeyGen: &enroll.PoolConfig{KeyType: "RSA-2048", Size: warmSize}}
		c.Labels["cold"] = enroll.Label{Profile: "device", ClientCerts: true, ServerKeyGen: &enroll.PoolConfig{KeyType: "RSA-2048", Size: 0}}
	})
	ctx := context.Background()
	cred, _ := e.enrollDeviceB(b, "bench-dev")
	client := e.client(cred)
	der, _ := csr(b, "bench-dev") // a client certificate enrolls only its own names
	body := b64(der)

	// Let the warm pool fill first, so its key generation does not run
	// beside the measurements.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, _ := e.store.CountESTPoolKeys(ctx, "warm", "RSA-2048")
		if n >= warmSize || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	b.Run("ca.Issue", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.ca.Issue(ctx, ca.Request{CSR: der, Profile: "device", Requester: "bench", Protocol: "cli"}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	})
	b.Run("simpleenroll", func(b *testing.B) {
		for b.Loop() {
			if r := postB(b, client, e.url("/certonly/simpleenroll"), body); r != 200 {
				b.Fatalf("simpleenroll = %d", r)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	})
	for _, l := range []string{"warm", "cold"} {
		b.Run("serverkeygen-"+l, func(b *testing.B) {
			if l == "warm" && b.N > warmSize*4/5 {
				b.Logf("b.N=%d drains the warm pool past its refill mark", b.N)
			}
			for b.Loop() {
				if r := postB(b, client, e.url("/"+l+"/serverkeygen"), body); r != 200 {
					b.Fatalf("serverkeygen = %d", r)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}
