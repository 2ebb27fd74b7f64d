package inventory_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestCredentialRevokeRacesUse: an unused EST token or EAB key is revoked
// once and audited; a used one is not; and a revocation racing a
// redemption (or binding) lets exactly one of them win.
func TestCredentialRevokeRacesUse(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
			ev := inventory.Event{Actor: "user:root", Protocol: "api", Outcome: "ok"}
			for i, id := range []string{"est-a", "est-b"} {
				tok := &inventory.ESTToken{ID: id, Label: "default", SecretSHA256: "aa", ExpiresAt: now.Add(time.Hour), CreatedAt: now.Add(time.Duration(i) * time.Minute)}
				if err := st.CreateESTToken(ctx, tok, ev); err != nil {
					t.Fatal(err)
				}
			}
			list, err := st.ESTTokens(ctx)
			if err != nil || len(list) != 2 || list[0].ID != "est-b" || list[0].SecretSHA256 != "" {
				t.Fatalf("ESTTokens = %+v, %v; want est-b first, no digests", list, err)
			}
			if _, err := st.UseESTToken(ctx, "est-a", "default", "aa", "x", now); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				id   string
				want error
			}{{"est-a", inventory.ErrConflict}, {"est-none", inventory.ErrNotFound}, {"est-b", nil}, {"est-b", inventory.ErrNotFound}} {
				if err := st.RevokeESTToken(ctx, tc.id, ev); !errors.Is(err, tc.want) && (tc.want != nil || err != nil) {
					t.Errorf("RevokeESTToken(%s) = %v, want %v", tc.id, err, tc.want)
				}
			}
			evs, err := st.Events(ctx, inventory.EventFilter{Action: "est.token.revoke"})
			if err != nil || len(evs) != 1 || evs[0].Object != "est-token:est-b" || evs[0].Actor != "user:root" {
				t.Errorf("revoke events = %+v, %v", evs, err)
			}

			// Race: revoke against redemption of one token, many times.
			for i := range 10 {
				id := "est-race-" + string(rune('a'+i))
				if err := st.CreateESTToken(ctx, &inventory.ESTToken{ID: id, Label: "default", SecretSHA256: "aa", ExpiresAt: now.Add(time.Hour)}, ev); err != nil {
					t.Fatal(err)
				}
				var useErr, revErr error
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); _, useErr = st.UseESTToken(ctx, id, "default", "aa", "x", now) }()
				go func() { defer wg.Done(); revErr = st.RevokeESTToken(ctx, id, ev) }()
				wg.Wait()
				if (useErr == nil) == (revErr == nil) {
					t.Errorf("%s: use %v, revoke %v; want exactly one to win", id, useErr, revErr)
				}
			}

			for _, kid := range []string{"eab-1", "eab-2"} {
				if err := st.CreateACMEEABKey(ctx, &inventory.ACMEEABKey{KeyID: kid, Profile: "default", Sealed: []byte{1, 2, 3}, CreatedBy: "root"}, ev); err != nil {
					t.Fatal(err)
				}
			}
			acct := &inventory.ACMEAccount{ID: "acct-1", Thumbprint: "tp-1", JWK: `{"kty":"EC"}`, Status: inventory.ACMEAccountValid, EABKeyID: "eab-1", Profile: "default"}
			if err := st.CreateACMEAccount(ctx, acct, ev); err != nil {
				t.Fatal(err)
			}
			keys, err := st.ACMEEABKeys(ctx)
			if err != nil || len(keys) != 2 {
				t.Fatalf("ACMEEABKeys = %+v, %v", keys, err)
			}
			for _, k := range keys {
				if len(k.Sealed) != 0 || (k.KeyID == "eab-1") != (k.AccountID == "acct-1") {
					t.Errorf("listed key %+v: want no sealed key, eab-1 bound to acct-1", k)
				}
			}
			for _, tc := range []struct {
				kid  string
				want error
			}{{"eab-1", inventory.ErrConflict}, {"eab-none", inventory.ErrNotFound}, {"eab-2", nil}, {"eab-2", inventory.ErrNotFound}} {
				if err := st.RevokeACMEEABKey(ctx, tc.kid, ev); !errors.Is(err, tc.want) && (tc.want != nil || err != nil) {
					t.Errorf("RevokeACMEEABKey(%s) = %v, want %v", tc.kid, err, tc.want)
				}
			}
			// A revoked key cannot bind an account afterwards.
			acct2 := &inventory.ACMEAccount{ID: "acct-2", Thumbprint: "tp-2", JWK: `{"kty":"EC"}`, Status: inventory.ACMEAccountValid, EABKeyID: "eab-2", Profile: "default"}
			if err := st.CreateACMEAccount(ctx, acct2, ev); !errors.Is(err, inventory.ErrConflict) {
				t.Errorf("binding a revoked key = %v, want ErrConflict", err)
			}
			if evs, err := st.Events(ctx, inventory.EventFilter{Action: "acme.eab.revoke"}); err != nil || len(evs) != 1 || evs[0].Object != "acme-eab:eab-2" {
				t.Errorf("EAB revoke events = %+v, %v", evs, err)
			}
		})
	}
}
