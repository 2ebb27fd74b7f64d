package hsm_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"testing"

	"github.com/mica-pki/mica/hsm"
)

// benchTypes are the key types ca/ compares issuance rates against.
var benchTypes = []hsm.KeyType{hsm.ECP256, hsm.RSA2048}

// BenchmarkSign measures the raw signing rate of one goroutine:
// BenchmarkSign/{softkms,pkcs11}/{EC-P256,RSA-2048}.
func BenchmarkSign(b *testing.B) {
	b.Run("softkms", func(b *testing.B) { benchBackend(b, openSoftBench(b), false) })
	b.Run("pkcs11", benchPKCS11)
}

// BenchmarkSignParallel is the same with GOMAXPROCS goroutines sharing one
// Signer, as concurrent issuance does.
func BenchmarkSignParallel(b *testing.B) {
	b.Run("softkms", func(b *testing.B) { benchBackend(b, openSoftBench(b), true) })
	b.Run("pkcs11", func(b *testing.B) { benchPKCS11Parallel(b) })
}

func openSoftBench(b *testing.B) hsm.Backend {
	bk, _, _ := openSoft(b)
	return bk
}

func benchBackend(b *testing.B, bk hsm.Backend, parallel bool) {
	ctx := context.Background()
	for _, kt := range benchTypes {
		u, err := bk.CreateKey(ctx, uniq("bench-"+string(kt)), kt)
		if err != nil {
			b.Fatal(err)
		}
		s, err := bk.Signer(ctx, u)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(string(kt), func(b *testing.B) { benchSigner(b, s, parallel) })
	}
}

func benchSigner(b *testing.B, s crypto.Signer, parallel bool) {
	d, opts := digestFor(s)
	b.ReportAllocs()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Sign(rand.Reader, d, opts); err != nil {
					b.Error(err)
					return
				}
			}
		})
		return
	}
	for b.Loop() {
		if _, err := s.Sign(rand.Reader, d, opts); err != nil {
			b.Fatal(err)
		}
	}
}
