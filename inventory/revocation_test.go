package inventory_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// eachDSN is eachStore for tests that open one database twice, as two
// replicas would.
func eachDSN(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { t.Parallel(); fn(t, inventorytest.SQLiteDSN(t)) })
	t.Run("postgres", func(t *testing.T) { t.Parallel(); fn(t, inventorytest.PostgresDSN(t)) })
}

func openDSN(t *testing.T, dsn string) *inventory.Store {
	t.Helper()
	s, err := inventory.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCRLNumberMonotonicAcrossReplicas(t *testing.T) {
	eachDSN(t, func(t *testing.T, dsn string) {
		a := openDSN(t, dsn)
		b := openDSN(t, dsn)
		inventorytest.Issuer(t, a, "iss")
		ctx := context.Background()
		var mu sync.Mutex
		var got []int64
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := a
				if i%2 == 1 {
					st = b
				}
				n, err := st.NextCRLNumber(ctx, "iss")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, n)
				mu.Unlock()
			}()
		}
		wg.Wait()
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		for i, n := range got {
			if n != int64(i+1) {
				t.Fatalf("CRL numbers = %v, want 1..20 each once", got)
			}
		}
		if _, err := a.NextCRLNumber(ctx, "nope"); !errors.Is(err, inventory.ErrNotFound) {
			t.Errorf("NextCRLNumber(unknown issuer) = %v, want ErrNotFound", err)
		}
	})
}

func TestPutCRLKeepsNewest(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "iss")
		now := time.Now().UTC().Truncate(time.Second)
		put := func(n int64, der string) bool {
			ok, err := s.PutCRL(ctx, &inventory.CRL{IssuerID: "iss", Number: n, ThisUpdate: now, NextUpdate: now.Add(time.Hour), DER: []byte(der)})
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !put(2, "two") || put(1, "one") || put(2, "again") || !put(3, "three") {
			t.Fatal("PutCRL must store only increasing numbers")
		}
		c, err := s.LatestCRL(ctx, "iss", 0, false)
		if err != nil || c.Number != 3 || string(c.DER) != "three" || len(c.SHA256) != 64 || !c.ThisUpdate.Equal(now) {
			t.Fatalf("LatestCRL = %+v, %v", c, err)
		}
		if _, err := s.LatestCRL(ctx, "iss", 1, false); !errors.Is(err, inventory.ErrNotFound) {
			t.Errorf("LatestCRL(shard 1) = %v, want ErrNotFound", err)
		}
	})
}

func TestRevokedCertificatesAndOCSP(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "iss")
		now := time.Now().UTC().Truncate(time.Second)
		mk := func(notAfter time.Time) *inventory.Certificate {
			c := newCert(t, "iss")
			c.NotBefore, c.NotAfter = now.Add(-48*time.Hour), notAfter
			return inventorytest.Issue(t, s, c)
		}
		good := mk(now.Add(time.Hour))
		revoked := mk(now.Add(time.Hour))
		expired := mk(now.Add(-time.Minute))
		for _, c := range []*inventory.Certificate{revoked, expired} {
			if _, err := s.RevokeCertificate(ctx, "iss", c.Serial, "keyCompromise", now.Add(-time.Hour), inventory.Event{Actor: "t"}); err != nil {
				t.Fatal(err)
			}
		}
		var seen []inventory.RevokedEntry
		err := s.RevokedCertificates(ctx, inventory.RevokedFilter{IssuerID: "iss"}, func(e inventory.RevokedEntry) error {
			seen = append(seen, e)
			return nil
		})
		if err != nil || len(seen) != 1 || seen[0].Serial != revoked.Serial || seen[0].Reason != "keyCompromise" ||
			!seen[0].RevokedAt.Equal(now.Add(-time.Hour)) {
			t.Fatalf("RevokedCertificates = %+v, %v; want only %s (expired ones leave the CRL)", seen, err, revoked.Serial)
		}
		n := 0
		_ = s.RevokedCertificates(ctx, inventory.RevokedFilter{IssuerID: "iss", RevokedSince: now}, func(inventory.RevokedEntry) error { n++; return nil })
		if n != 0 {
			t.Errorf("RevokedSince now: %d entries, want 0", n)
		}

		due, err := s.OCSPDue(ctx, "iss", now.Add(time.Hour), now, 100)
		if err != nil || len(due) != 2 {
			t.Fatalf("OCSPDue = %d, %v; want the 2 unexpired certificates", len(due), err)
		}
		put := func(c *inventory.Certificate, status string, this time.Time) {
			t.Helper()
			if err := s.PutOCSPResponse(ctx, &inventory.OCSPResponse{IssuerID: "iss", Serial: c.Serial, Status: status,
				ThisUpdate: this, NextUpdate: this.Add(24 * time.Hour), DER: []byte(status)}); err != nil {
				t.Fatal(err)
			}
		}
		put(good, "good", now)
		put(revoked, "good", now.Add(-2*time.Hour)) // stale: signed before the revocation
		due, _ = s.OCSPDue(ctx, "iss", now.Add(time.Hour), now, 100)
		if len(due) != 1 || due[0].Serial != revoked.Serial || due[0].State != inventory.StateRevoked {
			t.Fatalf("OCSPDue = %+v, want the revoked certificate whose response still says good", due)
		}
		put(revoked, "revoked", now)
		put(revoked, "good", now.Add(time.Minute)) // a racing refresh must not undo the revocation
		r, err := s.GetOCSPResponse(ctx, "iss", revoked.Serial)
		if err != nil || r.Status != "revoked" || string(r.DER) != "revoked" {
			t.Fatalf("GetOCSPResponse = %+v, %v; want revoked kept", r, err)
		}
		if due, _ = s.OCSPDue(ctx, "iss", now.Add(time.Hour), now, 100); len(due) != 0 {
			t.Errorf("OCSPDue after refresh = %d, want 0", len(due))
		}
		if due, _ = s.OCSPDue(ctx, "iss", now.Add(48*time.Hour), now, 100); len(due) != 2 {
			t.Errorf("OCSPDue with a later horizon = %d, want 2", len(due))
		}
		if _, err := s.GetOCSPResponse(ctx, "iss", "abc"); !errors.Is(err, inventory.ErrNotFound) {
			t.Errorf("GetOCSPResponse(unknown) = %v, want ErrNotFound", err)
		}

		got, err := s.FindCertificates(ctx, inventory.CertFilter{Serials: []string{good.Serial, "0x" + revoked.Serial, "ffff"}})
		if err != nil || len(got) != 2 {
			t.Errorf("FindCertificates(Serials) = %d, %v; want 2", len(got), err)
		}
	})
}

func TestBlockedKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		h := strings.Repeat("Ab", 32) // any case is accepted
		if _, err := s.KeyBlocked(ctx, h); !errors.Is(err, inventory.ErrNotFound) {
			t.Fatalf("KeyBlocked before = %v", err)
		}
		if err := s.BlockKey(ctx, inventory.BlockedKey{PublicKeySHA256: h, Reason: "keyCompromise", Actor: "alice"}, inventory.Event{Actor: "alice"}); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.BlockKey(ctx, inventory.BlockedKey{PublicKeySHA256: h}, inventory.Event{Actor: "bob"}), inventory.ErrDuplicate)
		k, err := s.KeyBlocked(ctx, h)
		if err != nil || k.Actor != "alice" || k.Reason != "keyCompromise" {
			t.Fatalf("KeyBlocked = %+v, %v", k, err)
		}
		if l, _ := s.BlockedKeys(ctx); len(l) != 1 {
			t.Errorf("BlockedKeys = %d, want 1", len(l))
		}
		evs, _ := s.Events(ctx, inventory.EventFilter{Action: "key.block"})
		if len(evs) != 1 {
			t.Errorf("key.block events = %d, want 1", len(evs))
		}
		wantErr(t, s.UnblockKey(ctx, h, inventory.Event{Actor: "alice"}), nil)
		wantErr(t, s.UnblockKey(ctx, h, inventory.Event{Actor: "alice"}), inventory.ErrNotFound)
		wantErr(t, s.BlockKey(ctx, inventory.BlockedKey{PublicKeySHA256: "xyz"}, inventory.Event{}), inventory.ErrInvalid)
	})
}

func TestTryLockExclusiveAcrossReplicas(t *testing.T) {
	eachDSN(t, func(t *testing.T, dsn string) {
		a := openDSN(t, dsn)
		b := openDSN(t, dsn)
		ctx := context.Background()
		relA, ok, err := a.TryLock(ctx, "crl:iss")
		if err != nil || !ok {
			t.Fatalf("first TryLock = %v, %v", ok, err)
		}
		if _, ok, err := b.TryLock(ctx, "crl:iss"); err != nil || ok {
			t.Fatalf("second TryLock while held = %v, %v; want not ok", ok, err)
		}
		relOther, ok, _ := b.TryLock(ctx, "crl:other")
		if !ok {
			t.Fatal("a different name must not be blocked")
		}
		relOther()
		relA()
		relB, ok, err := b.TryLock(ctx, "crl:iss")
		if err != nil || !ok {
			t.Fatalf("TryLock after release = %v, %v", ok, err)
		}
		relB()
	})
}
