package acme_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// BenchmarkOrders drives whole ACME orders — reused account, newOrder,
// http-01 answered by the in-process responder, finalize, download — from
// concurrent x/crypto/acme clients, and reports orders/s next to the raw
// issuance rate of the same CA key (ca.Issue with a CSR, no ACME) measured
// in the same run.
//
//	go test -run '^$' -bench Orders -benchtime 200x ./acme/
func BenchmarkOrders(b *testing.B) {
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			ctx := context.Background()
			e := newEnv(b, inventorytest.SQLite(b), nil)
			cs := make([]*xacme.Client, clients)
			for i := range cs {
				cs[i] = e.client(ctx)
			}

			// Raw issuance rate, same key, same store.
			const raw = 50
			csrs := make([][]byte, raw)
			for i := range csrs {
				csrs[i] = csr(b, newKey(b), fmt.Sprintf("raw%d.test", i))
			}
			start := time.Now()
			for i := range raw {
				if _, err := e.ca.Issue(ctx, ca.Request{CSR: csrs[i], Profile: "server", Protocol: "cli"}); err != nil {
					b.Fatal(err)
				}
			}
			rawRate := raw / time.Since(start).Seconds()

			var next atomic.Int64
			var failed atomic.Value
			var wg sync.WaitGroup
			b.ResetTimer()
			start = time.Now()
			for _, c := range cs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
						if err := e.order(ctx, c, fmt.Sprintf("o%d.test", n)); err != nil {
							failed.Store(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "orders/s")
			b.ReportMetric(rawRate, "ca_issue/s")
		})
	}
}

// order runs one http-01 order for name and downloads the chain; errors
// instead of t.Fatal, for use from many goroutines.
func (e *testEnv) order(ctx context.Context, c *xacme.Client, name string) error {
	o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: name}})
	if err != nil {
		return err
	}
	z, err := c.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		return err
	}
	for _, ch := range z.Challenges {
		if ch.Type != "http-01" {
			continue
		}
		v, _ := c.HTTP01ChallengeResponse(ch.Token)
		e.tokens.Store(ch.Token, v)
		if _, err := c.Accept(ctx, ch); err != nil {
			return err
		}
	}
	if _, err := c.WaitAuthorization(ctx, z.URI); err != nil {
		return err
	}
	if _, err := c.WaitOrder(ctx, o.URI); err != nil {
		return err
	}
	certs, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr(e.t, newKey(e.t), name), true)
	if err != nil {
		return err
	}
	if len(certs) < 2 {
		return fmt.Errorf("chain of %d certificates", len(certs))
	}
	return nil
}
