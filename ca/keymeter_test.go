package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

var _ HourlyKeyUsageStore = (*inventory.Store)(nil)

// meterFixture is one database opened twice (two replicas) with one key
// registered under the URI both meters sign with.
type meterFixture struct {
	replicas [2]*inventory.Store
	keys     *fakeKeys
	uri      string
}

func newMeterFixture(t testing.TB, dsn string) *meterFixture {
	t.Helper()
	ctx := context.Background()
	f := &meterFixture{keys: newFakeKeys()}
	for i := range f.replicas {
		st, err := inventory.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		f.replicas[i] = st
	}
	var err error
	if f.uri, err = f.keys.CreateKey(ctx, "issuing-meter", hsm.ECP256); err != nil {
		t.Fatal(err)
	}
	k := inventory.Key{ID: "issuing-meter", Class: KeyClassIssuing, Backend: "fake", URI: f.uri, Algorithm: "EC-P256"}
	if err := f.replicas[0].PutKey(ctx, &k, inventory.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func meterDSNs() map[string]func(testing.TB) string {
	return map[string]func(testing.TB) string{"sqlite": inventorytest.SQLiteDSN, "postgres": inventorytest.PostgresDSN}
}

// TestMeteredKeysHourlyTwoReplicas: two MeteredKeys (two replicas, each
// on its own connection pool to one database) sign concurrently across
// an hour boundary while flushing concurrently; the hourly buckets and
// the key's lifetime counter hold exactly the signatures made, split by
// the injected clock's hour.
func TestMeteredKeysHourlyTwoReplicas(t *testing.T) {
	t.Parallel()
	for name, dsn := range meterDSNs() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newMeterFixture(t, dsn(t))
			hour := time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC)
			var clock atomic.Int64
			clock.Store(hour.Add(59 * time.Minute).UnixNano())
			now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }

			var meters [2]*MeteredKeys
			for i, st := range f.replicas {
				m, err := NewMeteredKeys(ctx, f.keys, st, MeterOptions{FlushEvery: -1, Now: now, Logger: discardLogger()})
				if err != nil {
					t.Fatal(err)
				}
				meters[i] = m
			}
			const workers, perPhase = 4, 25
			digest := sha256.Sum256([]byte("tbs"))
			phase := func() {
				var wg, flushers sync.WaitGroup
				stop := make(chan struct{})
				for _, m := range meters {
					s, err := m.Signer(ctx, f.uri)
					if err != nil {
						t.Fatal(err)
					}
					for range workers {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for range perPhase {
								if _, err := s.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
									t.Error(err)
									return
								}
							}
						}()
					}
					// Flushes race with the signing, as the periodic flush does.
					flushers.Add(1)
					go func() {
						defer flushers.Done()
						for {
							select {
							case <-stop:
								return
							default:
								if err := m.Flush(ctx); err != nil {
									t.Error(err)
								}
							}
						}
					}()
				}
				wg.Wait()
				close(stop)
				// A flush in flight must land before the clock moves on
				// and before the buckets are read.
				flushers.Wait()
			}
			phase()
			clock.Store(hour.Add(61 * time.Minute).UnixNano())
			phase()
			for _, m := range meters {
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
			}

			const perHour = 2 * workers * perPhase
			got, err := f.replicas[0].KeyUsageHours(ctx, hour)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].Signatures != perHour || got[1].Signatures != perHour ||
				!got[0].Hour.Equal(hour) || !got[1].Hour.Equal(hour.Add(time.Hour)) {
				t.Fatalf("hourly buckets = %+v, want %d signatures in %s and in the hour after", got, perHour, hour)
			}
			if !got[0].First.Equal(hour.Add(59*time.Minute)) || !got[1].Last.Equal(hour.Add(61*time.Minute)) {
				t.Errorf("bucket first/last = %v / %v", got[0].First, got[1].Last)
			}
			k, err := f.replicas[1].Key(ctx, "issuing-meter")
			if err != nil {
				t.Fatal(err)
			}
			if k.Signatures != 2*perHour {
				t.Errorf("lifetime signatures = %d, want %d", k.Signatures, 2*perHour)
			}
		})
	}
}

// lifetimeOnly hides RecordKeyUsage: the meter then writes only the
// lifetime counters, as before hourly buckets existed.
type lifetimeOnly struct{ KeyUsageStore }

// BenchmarkMeterFlush: one flush of a typical 30 s batch (one key, two
// hours, as around an hour boundary), lifetime counters only versus
// lifetime counters plus the hourly upsert in the same transaction.
// Compare the two ns/op figures of one run for the cost of the buckets.
func BenchmarkMeterFlush(b *testing.B) {
	ctx := context.Background()
	for name, dsn := range meterDSNs() {
		b.Run(name, func(b *testing.B) {
			f := newMeterFixture(b, dsn(b))
			for _, mode := range []string{"lifetime", "hourly"} {
				b.Run(mode, func(b *testing.B) {
					var st KeyUsageStore = f.replicas[0]
					if mode == "lifetime" {
						st = lifetimeOnly{f.replicas[0]}
					}
					at := time.Date(2030, 3, 4, 10, 59, 0, 0, time.UTC)
					m, err := NewMeteredKeys(ctx, f.keys, st, MeterOptions{FlushEvery: -1, Now: func() time.Time { return at }, Logger: discardLogger()})
					if err != nil {
						b.Fatal(err)
					}
					defer m.Close()
					b.ResetTimer()
					for range b.N {
						m.record(f.uri, 40, at, at)
						m.record(f.uri, 10, at.Add(2*time.Minute), at.Add(2*time.Minute))
						if err := m.Flush(ctx); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
