package inventory_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"runtime"
	"testing"
	"time"

	"github.com/mica-pki/mica/ca/revocation"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// BenchmarkCRLFromStore measures the production CRL path end to end: a
// database cursor over the revoked certificates (RevokedCertificates)
// streamed into revocation.WriteCRL, beside x509.CreateRevocationList fed
// from the same cursor (which must first collect every entry). peak-heap-MB
// is the heap growth while generating, sampled; it is what stays flat for
// the streaming path.
func BenchmarkCRLFromStore(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageCertSign, SubjectKeyId: []byte{1, 2, 3}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	issuer, _ := x509.ParseCertificate(der)
	for _, n := range []int{10_000, 100_000} {
		s := inventorytest.SQLite(b)
		inventorytest.Issuer(b, s, "iss")
		now := time.Now().UTC()
		certs := make([]inventory.Certificate, 0, 10_000)
		for i := range n {
			at := now.Add(-time.Duration(i) * time.Second)
			certs = append(certs, inventory.Certificate{IssuerID: "iss", Serial: fmt.Sprintf("1%032x", i),
				NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), State: inventory.StateRevoked,
				RevocationReason: "keyCompromise", RevokedAt: &at, DER: []byte{0}})
			if len(certs) == cap(certs) || i == n-1 {
				if err := s.Seed(context.Background(), certs); err != nil {
					b.Fatal(err)
				}
				certs = certs[:0]
			}
		}
		source := func(yield func(revocation.Entry) error) error {
			var sn big.Int
			return s.RevokedCertificates(context.Background(), inventory.RevokedFilter{IssuerID: "iss"}, func(e inventory.RevokedEntry) error {
				sn.SetString(e.Serial, 16)
				return yield(revocation.Entry{Serial: &sn, RevokedAt: e.RevokedAt, Reason: 1, InvalidityDate: e.RevokedAt})
			})
		}
		crlTmpl := revocation.CRLTemplate{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour), SpoolDir: b.TempDir()}
		b.Run(fmt.Sprintf("entries=%d/stream", n), func(b *testing.B) {
			var peak uint64
			for range b.N {
				peak = max(peak, peakDuring(func() {
					st, err := revocation.WriteCRL(io.Discard, crlTmpl, issuer, key, source)
					if err != nil || st.Entries != int64(n) {
						b.Fatal(err, st.Entries)
					}
				}))
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		})
		b.Run(fmt.Sprintf("entries=%d/x509", n), func(b *testing.B) {
			var peak uint64
			for range b.N {
				peak = max(peak, peakDuring(func() {
					var entries []x509.RevocationListEntry
					_ = source(func(e revocation.Entry) error {
						entries = append(entries, x509.RevocationListEntry{SerialNumber: new(big.Int).Set(e.Serial),
							RevocationTime: e.RevokedAt, ReasonCode: e.Reason})
						return nil
					})
					if _, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1),
						ThisUpdate: now, NextUpdate: now.Add(time.Hour), RevokedCertificateEntries: entries}, issuer, key); err != nil {
						b.Fatal(err)
					}
				}))
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		})
	}
}

// peakDuring runs fn while sampling the heap every millisecond and
// returns the largest growth over the starting heap.
func peakDuring(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		var peak uint64
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > base && m.HeapAlloc-base > peak {
				peak = m.HeapAlloc - base
			}
			select {
			case <-stop:
				done <- peak
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(stop)
	return <-done
}
