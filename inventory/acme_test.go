package inventory_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

func newAccount(id string) *inventory.ACMEAccount {
	return &inventory.ACMEAccount{ID: id, Thumbprint: "tp-" + id, JWK: `{"kty":"EC"}`, Status: inventory.ACMEAccountValid,
		Contact: []string{"mailto:" + id + "@a.test"}, Profile: "default", Source: "192.0.2.1"}
}

func TestACMEAccounts(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			a := newAccount("a1")
			if err := st.CreateACMEAccount(ctx, a, inventory.Event{Actor: "acme:test"}); err != nil {
				t.Fatal(err)
			}
			dup := newAccount("a2")
			dup.Thumbprint = a.Thumbprint
			if err := st.CreateACMEAccount(ctx, dup, inventory.Event{}); !errors.Is(err, inventory.ErrDuplicate) {
				t.Fatalf("CreateACMEAccount(same key) = %v, want ErrDuplicate", err)
			}
			got, err := st.ACMEAccount(ctx, inventory.ACMEAccountFilter{Thumbprint: "tp-a1"})
			if err != nil || got.ID != "a1" || got.Contact[0] != "mailto:a1@a.test" || !got.CreatedAt.Equal(a.CreatedAt) {
				t.Fatalf("ACMEAccount(thumbprint) = %+v, %v", got, err)
			}
			if _, err := st.ACMEAccount(ctx, inventory.ACMEAccountFilter{ID: "nope"}); !errors.Is(err, inventory.ErrNotFound) {
				t.Fatalf("ACMEAccount(nope) = %v, want ErrNotFound", err)
			}
			if _, err := st.ACMEAccount(ctx, inventory.ACMEAccountFilter{}); !errors.Is(err, inventory.ErrInvalid) {
				t.Fatalf("ACMEAccount(empty filter) = %v, want ErrInvalid", err)
			}

			// Key rollover onto a key another account holds is refused.
			b := newAccount("b1")
			if err := st.CreateACMEAccount(ctx, b, inventory.Event{}); err != nil {
				t.Fatal(err)
			}
			got.Thumbprint = b.Thumbprint
			if err := st.UpdateACMEAccount(ctx, got, inventory.Event{Action: "acme.account.keychange"}); !errors.Is(err, inventory.ErrDuplicate) {
				t.Fatalf("UpdateACMEAccount(other's key) = %v, want ErrDuplicate", err)
			}
			got.Thumbprint, got.Status = "tp-new", inventory.ACMEAccountDeactivated
			if err := st.UpdateACMEAccount(ctx, got, inventory.Event{}); err != nil {
				t.Fatal(err)
			}
			if err := st.UpdateACMEAccount(ctx, got, inventory.Event{}); !errors.Is(err, inventory.ErrConflict) {
				t.Fatalf("UpdateACMEAccount(deactivated) = %v, want ErrConflict", err)
			}
			if n, err := st.CountACMEAccounts(ctx, inventory.ACMEAccountFilter{Source: "192.0.2.1", Since: time.Now().Add(-time.Hour)}); err != nil || n != 2 {
				t.Fatalf("CountACMEAccounts = %d, %v, want 2", n, err)
			}
			evs, err := st.Events(ctx, inventory.EventFilter{Action: "acme."})
			if err != nil || len(evs) != 3 {
				t.Fatalf("acme events = %d, %v, want 3", len(evs), err)
			}
		})
	}
}

func TestACMENoncesOnce(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var wins atomic.Int32
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := st.UseACMENonce(ctx, "n1", time.Now().Add(time.Hour))
					if err != nil {
						t.Error(err)
					}
					if ok {
						wins.Add(1)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("nonce redeemed %d times, want exactly 1", wins.Load())
			}
			if ok, err := st.UseACMENonce(ctx, "old", time.Now().Add(-time.Second)); !ok || err != nil {
				t.Fatalf("UseACMENonce(old) = %v, %v, want true", ok, err)
			}
			if n, err := st.PurgeACMEUsedNonces(ctx, time.Now()); err != nil || n != 1 {
				t.Fatalf("PurgeACMEUsedNonces = %d, %v, want 1", n, err)
			}
			if ok, err := st.UseACMENonce(ctx, "n1", time.Now().Add(time.Hour)); ok || err != nil {
				t.Fatalf("UseACMENonce(n1) after purge = %v, %v, want false (not expired)", ok, err)
			}
		})
	}
}

// TestACMENonceLazyCommitRestoresDurability: the used-nonce insert
// commits without a sync on its own connection, and that connection goes
// back to the pool durable (synchronous=FULL, 2) for everything else.
func TestACMENonceLazyCommitRestoresDurability(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := inventorytest.SQLite(t)
	db := st.RawDB()
	db.SetMaxOpenConns(1) // the nonce insert and the check share one connection
	for i := range 3 {
		if ok, err := st.UseACMENonce(ctx, fmt.Sprintf("n%d", i), time.Now().Add(time.Hour)); !ok || err != nil {
			t.Fatal(ok, err)
		}
		var sync int
		if err := db.GetContext(ctx, &sync, `PRAGMA synchronous`); err != nil {
			t.Fatal(err)
		}
		if sync != 2 {
			t.Fatalf("after a nonce redemption the pooled connection has synchronous=%d, want 2 (FULL)", sync)
		}
	}
}

// TestACMENonceKeyShared: replicas starting together on a fresh store
// agree on one nonce key, whichever candidate won.
func TestACMENonceKeyShared(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			keys := make([][]byte, 8)
			var wg sync.WaitGroup
			for i := range keys {
				wg.Add(1)
				go func() {
					defer wg.Done()
					k, err := st.ACMENonceKey(ctx, []byte{byte(i + 1), 2, 3})
					if err != nil {
						t.Error(err)
					}
					keys[i] = k
				}()
			}
			wg.Wait()
			for _, k := range keys {
				if len(k) != 3 || string(k) != string(keys[0]) {
					t.Fatalf("replicas disagree on the nonce key: %x", keys)
				}
			}
		})
	}
}

func TestACMEOrders(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if err := st.CreateACMEAccount(ctx, newAccount("acc"), inventory.Event{}); err != nil {
				t.Fatal(err)
			}
			nb := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
			o := &inventory.ACMEOrder{ID: "o1", AccountID: "acc", Profile: "server", Status: "pending",
				Identifiers: []inventory.ACMEIdentifier{{Type: "dns", Value: "a.test"}, {Type: "ip", Value: "10.0.0.1"}},
				NotBefore:   &nb, Expires: time.Now().Add(24 * time.Hour), Source: "192.0.2.1"}
			var authzs []inventory.ACMEAuthz
			for i, id := range o.Identifiers {
				authzs = append(authzs, inventory.ACMEAuthz{ID: fmt.Sprint("z", i), Identifier: id, Status: "pending", Expires: o.Expires,
					Challenges: []inventory.ACMEChallenge{{ID: fmt.Sprint("c", i), Type: "http-01", Token: "tok", Status: "pending"}}})
			}
			if err := st.CreateACMEOrder(ctx, o, authzs); err != nil {
				t.Fatal(err)
			}
			bad := *o
			bad.ID, bad.AccountID = "o2", "nobody"
			if err := st.CreateACMEOrder(ctx, &bad, nil); !errors.Is(err, inventory.ErrNotFound) {
				t.Fatalf("CreateACMEOrder(unknown account) = %v, want ErrNotFound", err)
			}
			got, err := st.ACMEOrder(ctx, "o1")
			if err != nil || len(got.AuthzIDs) != 2 || got.Identifiers[1].Value != "10.0.0.1" || !got.NotBefore.Equal(nb) || got.NotAfter != nil {
				t.Fatalf("ACMEOrder = %+v, %v", got, err)
			}
			zs, err := st.ACMEAuthzs(ctx, inventory.ACMEAuthzFilter{OrderID: "o1"})
			if err != nil || len(zs) != 2 || len(zs[0].Challenges) != 1 || zs[0].AccountID != "acc" {
				t.Fatalf("ACMEAuthzs = %+v, %v", zs, err)
			}

			now := time.Now()
			prob := json.RawMessage(`{"type":"urn:ietf:params:acme:error:connection"}`)
			if err := st.UpdateACMEChallenge(ctx, "c0", []string{"pending"}, inventory.ACMEChallengeUpdate{Status: "processing"}); err != nil {
				t.Fatal(err)
			}
			if err := st.UpdateACMEChallenge(ctx, "c0", []string{"pending"}, inventory.ACMEChallengeUpdate{Status: "processing"}); !errors.Is(err, inventory.ErrConflict) {
				t.Fatalf("second start = %v, want ErrConflict", err)
			}
			for _, f := range []struct {
				f    inventory.ACMEAuthzFilter
				want int
			}{
				{inventory.ACMEAuthzFilter{ChallengeStatus: "processing"}, 1},
				{inventory.ACMEAuthzFilter{Status: "pending", ChallengeStatus: "processing", AccountID: "acc"}, 1},
				{inventory.ACMEAuthzFilter{Status: "valid", ChallengeStatus: "processing"}, 0},
				{inventory.ACMEAuthzFilter{ChallengeStatus: "pending"}, 1},
			} {
				if zs, err := st.ACMEAuthzs(ctx, f.f); err != nil || len(zs) != f.want || (f.want == 1 && f.f.ChallengeStatus == "processing" && zs[0].ID != "z0") {
					t.Fatalf("ACMEAuthzs(%+v) = %d authorizations, %v; want %d", f.f, len(zs), err, f.want)
				}
			}
			if err := st.UpdateACMEChallenge(ctx, "c0", []string{"processing"}, inventory.ACMEChallengeUpdate{Status: "invalid", Error: prob, Validated: &now}); err != nil {
				t.Fatal(err)
			}
			c, err := st.ACMEChallenge(ctx, "c0")
			if err != nil || c.Status != "invalid" || string(c.Error) != string(prob) || c.Validated == nil {
				t.Fatalf("ACMEChallenge = %+v, %v", c, err)
			}
			if err := st.UpdateACMEAuthz(ctx, "nope", []string{"pending"}, "valid"); !errors.Is(err, inventory.ErrNotFound) {
				t.Fatalf("UpdateACMEAuthz(nope) = %v, want ErrNotFound", err)
			}
			if err := st.UpdateACMEOrder(ctx, "o1", []string{"ready"}, inventory.ACMEOrderUpdate{Status: "processing"}); !errors.Is(err, inventory.ErrConflict) {
				t.Fatalf("UpdateACMEOrder(pending as ready) = %v, want ErrConflict", err)
			}
			if err := st.UpdateACMEOrder(ctx, "o1", []string{"pending"}, inventory.ACMEOrderUpdate{Status: "valid", CertIssuerID: "iss", CertSerial: "ab"}); err != nil {
				t.Fatal(err)
			}
			found, err := st.FindACMEOrders(ctx, inventory.ACMEOrderFilter{CertIssuerID: "iss", CertSerial: "ab"})
			if err != nil || len(found) != 1 || found[0].Status != "valid" {
				t.Fatalf("FindACMEOrders(cert) = %+v, %v", found, err)
			}
			if n, err := st.CountACMEOrders(ctx, inventory.ACMEOrderFilter{AccountID: "acc", Since: now.Add(-time.Minute)}); err != nil || n != 1 {
				t.Fatalf("CountACMEOrders = %d, %v, want 1", n, err)
			}
		})
	}
}

func TestACMEEABKeyBindsOnce(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			k := &inventory.ACMEEABKey{KeyID: "kid1", Profile: "default", Sealed: []byte{1, 2, 3}, CreatedBy: "cli:test"}
			if err := st.CreateACMEEABKey(ctx, k, inventory.Event{}); err != nil {
				t.Fatal(err)
			}
			a := newAccount("e1")
			a.EABKeyID = "kid1"
			if err := st.CreateACMEAccount(ctx, a, inventory.Event{}); err != nil {
				t.Fatal(err)
			}
			b := newAccount("e2")
			b.EABKeyID = "kid1"
			if err := st.CreateACMEAccount(ctx, b, inventory.Event{}); !errors.Is(err, inventory.ErrConflict) {
				t.Fatalf("second account on one EAB key = %v, want ErrConflict", err)
			}
			if _, err := st.ACMEAccount(ctx, inventory.ACMEAccountFilter{ID: "e2"}); !errors.Is(err, inventory.ErrNotFound) {
				t.Fatalf("refused account was stored: %v", err)
			}
			got, err := st.ACMEEABKey(ctx, "kid1")
			if err != nil || got.AccountID != "e1" || got.UsedAt == nil || string(got.Sealed) != "\x01\x02\x03" {
				t.Fatalf("ACMEEABKey = %+v, %v", got, err)
			}
		})
	}
}
