package inventory_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// benchStores is SQLite, plus PostgreSQL when MICA_TEST_POSTGRES_DSN is set.
func benchStores(b *testing.B) map[string]func(testing.TB) *inventory.Store {
	m := map[string]func(testing.TB) *inventory.Store{"sqlite": inventorytest.SQLite}
	if os.Getenv(inventorytest.EnvPostgresDSN) != "" {
		m["postgres"] = inventorytest.Postgres
	}
	return m
}

// BenchmarkReserveComplete measures one issuance's store work: reserve,
// then complete with DER + event (two durable transactions). DER signing
// is excluded from the timing.
func BenchmarkReserveComplete(b *testing.B) {
	for name, open := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			s := open(b)
			inventorytest.Issuer(b, s, "ca")
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c := newCert(b, "ca")
				der := inventorytest.DER(b, &c, nil)
				b.StartTimer()
				if err := s.ReserveCertificate(ctx, &c); err != nil {
					b.Fatal(err)
				}
				if err := s.CompleteCertificate(ctx, "ca", c.Serial, der, "", inventory.Event{Actor: "bench"}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"-parallel", func(b *testing.B) {
			s := open(b)
			inventorytest.Issuer(b, s, "ca")
			ctx := context.Background()
			c0 := newCert(b, "ca")
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c := c0
					c.Serial = inventorytest.RandomSerial(b)
					if err := s.ReserveCertificate(ctx, &c); err != nil {
						b.Error(err)
						return
					}
					if err := s.FailCertificate(ctx, "ca", c.Serial, inventory.Event{Actor: "bench"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// seedBench inserts n certificates with a realistic mix in one
// transaction: 80% valid, 5% expired, 10% revoked, 5% superseded, expiry
// spread over 400 days, two SANs each, ~600 byte DER.
func seedBench(b *testing.B, s *inventory.Store, n int, now time.Time) {
	b.Helper()
	inventorytest.Issuer(b, s, "ca")
	der := make([]byte, 600)
	der[0] = 0x30
	certs := make([]inventory.Certificate, n)
	for i := range certs {
		cn := fmt.Sprintf("host-%06d.site%02d.example.test", i, i%50)
		sum := sha256.Sum256([]byte(cn))
		c := inventory.Certificate{
			IssuerID: "ca", Serial: fmt.Sprintf("%x", 0x7a000000+i*7919), Subject: "CN=" + cn + ",O=Example",
			CommonName: cn, SANs: []string{"dns:" + cn, fmt.Sprintf("ip:10.%d.%d.%d", i>>16&255, i>>8&255, i&255)},
			NotBefore: now.Add(-90 * 24 * time.Hour), NotAfter: now.Add(time.Duration(i%400) * 24 * time.Hour),
			PublicKeySHA256: hex.EncodeToString(sum[:]), KeyType: "EC-P256", Profile: []string{"server", "device", "client"}[i%3],
			Requester: fmt.Sprintf("acct-%d", i%200), Protocol: []string{"acme", "est", "cli"}[i%3],
			State: inventory.StateIssued, DER: der, FingerprintSHA256: hex.EncodeToString(sum[:]),
		}
		switch r := i % 20; {
		case r == 0:
			c.NotAfter = now.Add(-time.Duration(i%30+1) * 24 * time.Hour) // expired
		case r == 1 || r == 2:
			at := now.Add(-time.Hour)
			c.State, c.RevocationReason, c.RevokedAt = inventory.StateRevoked, "keyCompromise", &at
		case r == 3:
			c.State = inventory.StateSuperseded
		}
		certs[i] = c
	}
	start := time.Now()
	if err := s.Seed(context.Background(), certs); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d certificates in %v", n, time.Since(start).Round(time.Millisecond))
	if err := s.Analyze(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFindCertificates measures the UI's typical queries over 50k
// certificates (one page of 100 each).
func BenchmarkFindCertificates(b *testing.B) {
	const n = 50000
	now := t0
	for name, open := range benchStores(b) {
		s := open(b)
		seedBench(b, s, n, now)
		ctx := context.Background()
		cases := []struct {
			name  string
			f     inventory.CertFilter
			count bool
		}{
			{name: "text-cn", f: inventory.CertFilter{Text: "host-04242"}},
			{name: "text-common", f: inventory.CertFilter{Text: "site07"}},
			{name: "text-ip", f: inventory.CertFilter{Text: "10.0.42."}},
			{name: "text-serial", f: inventory.CertFilter{Text: "7A:00:1F"}},
			{name: "serial-exact", f: inventory.CertFilter{Serial: fmt.Sprintf("%x", 0x7a000000+4242*7919)}},
			{name: "state-revoked", f: inventory.CertFilter{States: []inventory.State{inventory.StateRevoked}, Now: now}},
			{name: "state-issued", f: inventory.CertFilter{States: []inventory.State{inventory.StateIssued}, Now: now}},
			{name: "state-expired", f: inventory.CertFilter{States: []inventory.State{inventory.StateExpired}, Now: now}},
			{name: "expiring-30d", f: inventory.CertFilter{States: []inventory.State{inventory.StateIssued}, Now: now, ExpiresBefore: now.Add(30 * 24 * time.Hour)}},
			{name: "profile+protocol", f: inventory.CertFilter{Profile: "device", Protocol: "est"}},
			{name: "deep-page", f: inventory.CertFilter{Before: 1000}},
			{name: "count-expiring-30d", f: inventory.CertFilter{States: []inventory.State{inventory.StateIssued}, Now: now, ExpiresBefore: now.Add(30 * 24 * time.Hour)}, count: true},
			{name: "count-all", f: inventory.CertFilter{}, count: true},
			{name: "count-text", f: inventory.CertFilter{Text: "site07"}, count: true},
		}
		for _, tc := range cases {
			b.Run(name+"/"+tc.name, func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					var err error
					if tc.count {
						_, err = s.Count(ctx, tc.f)
					} else {
						_, err = s.FindCertificates(ctx, tc.f)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
