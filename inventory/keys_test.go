package inventory_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// TestKeys: registration, duplicate refusal, concurrent usage increments
// (several replicas flushing into one row lose nothing), first/last used
// widening, and the one-way door into destroyed.
func TestKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		k := inventory.Key{ID: "issuing-1", Class: "issuing", Backend: "softkms", URI: "softkms:name=issuing-1",
			Algorithm: "EC-P256", IssuerID: "issuing-1", Protection: []byte(`{"backend":"softkms"}`),
			Cryptoperiod: 24 * time.Hour, ActivateAt: t0}
		wantErr(t, s.PutKey(ctx, &k, inventory.Event{Actor: "test"}), nil)
		if k.RotationDue == nil || !k.RotationDue.Equal(t0.Add(24*time.Hour)) {
			t.Errorf("RotationDue = %v, want %v", k.RotationDue, t0.Add(24*time.Hour))
		}
		dup := inventory.Key{ID: "issuing-1", Class: "issuing", Backend: "softkms", Algorithm: "EC-P256"}
		wantErr(t, s.PutKey(ctx, &dup, inventory.Event{}), inventory.ErrDuplicate)

		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				at := t0.Add(time.Duration(i) * time.Minute)
				if err := s.AddKeyUsage(ctx, []inventory.KeyUsage{{URI: k.URI, Signatures: 5, First: at, Last: at}}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		got, err := s.Key(ctx, k.ID)
		wantErr(t, err, nil)
		if got.Signatures != 40 {
			t.Errorf("Signatures = %d, want 40", got.Signatures)
		}
		if got.FirstUsed == nil || !got.FirstUsed.Equal(t0) || got.LastUsed == nil || !got.LastUsed.Equal(t0.Add(7*time.Minute)) {
			t.Errorf("used range = %v..%v, want %v..%v", got.FirstUsed, got.LastUsed, t0, t0.Add(7*time.Minute))
		}
		if string(got.Protection) != `{"backend":"softkms"}` || got.Cryptoperiod != 24*time.Hour {
			t.Errorf("Key = %+v", got)
		}

		wantErr(t, s.SetKeyStatus(ctx, k.ID, inventory.KeyRetired, inventory.Event{}), nil)
		wantErr(t, s.SetKeyStatus(ctx, k.ID, inventory.KeyDestroyed, inventory.Event{}), nil)
		wantErr(t, s.SetKeyStatus(ctx, k.ID, inventory.KeyActive, inventory.Event{}), inventory.ErrConflict)
		wantErr(t, s.SetKeyStatus(ctx, "nope", inventory.KeyRetired, inventory.Event{}), inventory.ErrNotFound)
		wantErr(t, s.SetKeyStatus(ctx, k.ID, "lost", inventory.Event{}), inventory.ErrInvalid)
		got, _ = s.Key(ctx, k.ID)
		if got.Status != inventory.KeyDestroyed || got.RetiredAt == nil || got.DestroyedAt == nil {
			t.Errorf("after destroy: %+v", got)
		}
		all, err := s.Keys(ctx)
		wantErr(t, err, nil)
		if len(all) != 1 {
			t.Errorf("Keys() = %d keys, want 1", len(all))
		}
		if n, err := s.VerifyEvents(ctx); err != nil || n < 3 {
			t.Errorf("VerifyEvents = %d, %v", n, err)
		}
	})
}

// TestKeyMeteringAndSiteUsage: metering defaults to signer and is
// validated; a key counted where it is used takes an absolute count that
// repeating does not inflate; EAB key infos list creation and use without
// the sealed key.
func TestKeyMeteringAndSiteUsage(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		def := inventory.Key{ID: "a", Class: "issuing", Backend: "softkms", Algorithm: "EC-P256"}
		wantErr(t, s.PutKey(ctx, &def, inventory.Event{}), nil)
		if got, _ := s.Key(ctx, "a"); got.Metering != inventory.MeteringSigner {
			t.Errorf("default metering = %q, want signer", got.Metering)
		}
		bad := inventory.Key{ID: "b", Class: "eab-hmac", Backend: "db-sealed", Algorithm: "HMAC-SHA256-256", Metering: "sometimes"}
		wantErr(t, s.PutKey(ctx, &bad, inventory.Event{}), inventory.ErrInvalid)
		site := inventory.Key{ID: "eab-k1", Class: "eab-hmac", Backend: "db-sealed", URI: "acme-eab:k1", Algorithm: "HMAC-SHA256-256", Metering: inventory.MeteringSite}
		wantErr(t, s.PutKey(ctx, &site, inventory.Event{}), nil)
		used := t0.Add(time.Hour)
		for range 2 {
			wantErr(t, s.SetKeyUsage(ctx, "eab-k1", 1, &used, &used), nil)
		}
		got, _ := s.Key(ctx, "eab-k1")
		if got.Signatures != 1 || got.LastUsed == nil || !got.LastUsed.Equal(used) || got.Metering != inventory.MeteringSite {
			t.Errorf("site-counted key = %+v, want 1 use at %v", got, used)
		}
		wantErr(t, s.SetKeyUsage(ctx, "nope", 1, nil, nil), inventory.ErrNotFound)

		wantErr(t, s.CreateACMEEABKey(ctx, &inventory.ACMEEABKey{KeyID: "k1", Profile: "default", Sealed: []byte("sealed"), CreatedBy: "t"}, inventory.Event{}), nil)
		infos, err := s.EABKeyInfos(ctx)
		wantErr(t, err, nil)
		if len(infos) != 1 || infos[0].KeyID != "k1" || infos[0].UsedAt != nil || infos[0].CreatedAt.IsZero() {
			t.Errorf("EABKeyInfos = %+v", infos)
		}
	})
}
