package ca

import (
	"context"
	"testing"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestKeyInventoryCompleteness: besides the CA keys, the inventory lists
// the EST pool and ACME EAB sealing keys (from the backend, metered by the signer), the
// ACME EAB keys (db-sealed, their one use read from the EAB row) and the
// webhook secrets (config, by source, not metered); a changed secret
// source retires the old row. Registration is idempotent.
func TestKeyInventoryCompleteness(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(testing.TB) *inventory.Store{"sqlite": inventorytest.SQLite, "postgres": inventorytest.Postgres} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := open(t)
			uri, pass := hsmtest.SoftKMS(t)
			b, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: pass})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			if _, err := Init(ctx, InitOptions{Store: st, Keys: b, Actor: "test", Logger: discardLogger()}); err != nil {
				t.Fatal(err)
			}
			sealURI, err := b.CreateKey(ctx, PoolSealKeyLabel, hsm.RSA2048)
			if err != nil {
				t.Fatal(err)
			}
			eabSealURI, err := b.CreateKey(ctx, EABSealKeyLabel, hsm.RSA2048)
			if err != nil {
				t.Fatal(err)
			}
			used := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
			for _, kid := range []string{"kid_unused", "kid-used"} {
				if err := st.CreateACMEEABKey(ctx, &inventory.ACMEEABKey{KeyID: kid, Profile: "default", Sealed: []byte("sealed"), CreatedBy: "t"}, inventory.Event{Actor: "t"}); err != nil {
					t.Fatal(err)
				}
			}
			pol := KeyPolicy{Cryptoperiods: map[string]time.Duration{KeyClassPoolSeal: 365 * day, KeyClassEABSeal: 180 * day, KeyClassEABHMAC: 90 * day, KeyClassWebhookHMAC: 180 * day}}
			who := Actor{Name: "test"}
			if _, err := SyncKeys(ctx, st, b, pol, who); err != nil {
				t.Fatal(err)
			}
			if err := st.CreateACMEAccount(ctx, &inventory.ACMEAccount{ID: "acct1", Thumbprint: "tp1", JWK: "{}", Status: "valid",
				EABKeyID: "kid-used", Profile: "default", CreatedAt: used}, inventory.Event{Actor: "t"}); err != nil {
				t.Fatal(err)
			}
			secrets := []SecretKey{{ID: "webhook-1", Class: KeyClassWebhookHMAC, Source: "file:/etc/mica/hook.key", Bits: 256}}
			for range 2 { // idempotent
				if _, err := SyncKeys(ctx, st, b, pol, who); err != nil {
					t.Fatal(err)
				}
				if err := RegisterSecrets(ctx, st, secrets, pol, who); err != nil {
					t.Fatal(err)
				}
			}
			keys, err := st.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			byID := map[string]inventory.Key{}
			for _, k := range keys {
				byID[k.ID] = k
			}
			for _, tc := range []struct {
				id, class, backend, uri, alg, metering string
				period                                 time.Duration
				uses                                   int64
			}{
				{PoolSealKeyLabel, KeyClassPoolSeal, "softkms", sealURI, "RSA-2048", inventory.MeteringSigner, 365 * day, 0},
				{EABSealKeyLabel, KeyClassEABSeal, "softkms", eabSealURI, "RSA-2048", inventory.MeteringSigner, 180 * day, 0},
				{"eab-kid.unused", KeyClassEABHMAC, "db-sealed", "acme-eab:kid_unused", "HMAC-SHA256-256", inventory.MeteringSite, 90 * day, 0},
				{"eab-kid-used", KeyClassEABHMAC, "db-sealed", "acme-eab:kid-used", "HMAC-SHA256-256", inventory.MeteringSite, 90 * day, 1},
				{"webhook-1", KeyClassWebhookHMAC, "config", "file:/etc/mica/hook.key", "HMAC-SHA256-256", inventory.MeteringNone, 180 * day, 0},
			} {
				k, ok := byID[tc.id]
				if !ok {
					t.Errorf("key %s not in the inventory (have %d keys)", tc.id, len(keys))
					continue
				}
				if k.Class != tc.class || k.Backend != tc.backend || k.URI != tc.uri || k.Algorithm != tc.alg || k.Metering != tc.metering ||
					k.Cryptoperiod != tc.period || k.RotationDue == nil || k.Signatures != tc.uses {
					t.Errorf("key %s = %+v, want class %s backend %s uri %s alg %s metering %s period %s uses %d", tc.id, k, tc.class, tc.backend, tc.uri, tc.alg, tc.metering, tc.period, tc.uses)
				}
			}
			if k := byID["eab-kid-used"]; k.LastUsed == nil || !k.LastUsed.Equal(used) {
				t.Errorf("EAB key last used = %v, want %v", k.LastUsed, used)
			}
			if len(keys) != 7 { // root, issuing, pool seal, EAB seal, 2 EAB, webhook
				t.Errorf("inventory has %d keys, want 7", len(keys))
			}

			secrets[0].Source = "env:MICA_HOOK_SECRET"
			if err := RegisterSecrets(ctx, st, secrets, pol, who); err != nil {
				t.Fatal(err)
			}
			old, _ := st.Key(ctx, "webhook-1")
			if old.Status != inventory.KeyRetired {
				t.Errorf("replaced webhook secret status = %s, want retired", old.Status)
			}
			keys, _ = st.Keys(ctx)
			found := false
			for _, k := range keys {
				found = found || k.Class == KeyClassWebhookHMAC && k.Status == inventory.KeyActive && k.URI == "env:MICA_HOOK_SECRET"
			}
			if !found {
				t.Error("the new webhook secret source is not registered")
			}
		})
	}
}

// TestResponderKeysRegistered: each delegated OCSP responder key is in
// the inventory with its half-life as cryptoperiod and its signatures
// counted where it signs; a rotated responder's key is retired.
func TestResponderKeysRegistered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newKeyEnv(t, inventorytest.SQLite(t))
	clk := newTestClock(time.Now())
	c, err := New(ctx, Options{Store: e.st, Keys: e.meter, URLs: testURLs, Logger: discardLogger(), RevocationStore: e.st, Now: clk.Now,
		Revocation: RevocationConfig{DelegatedResponder: true, ResponderValidity: 4 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := issueOne(t, c)
	if err != nil {
		t.Fatal(err)
	}
	req := ocspRequest(t, leaf.Certificate, e.init.Issuing)
	if a := c.RespondOCSP(ctx, req); a.Status != "good" {
		t.Fatalf("OCSP = %s", a.Status)
	}
	c.rev.flushResponder(ctx, c.rev.currentResponder())
	responders := func() []inventory.Key {
		keys, _ := e.st.Keys(ctx)
		var out []inventory.Key
		for _, k := range keys {
			if k.Class == KeyClassOCSPResponder {
				out = append(out, k)
			}
		}
		return out
	}
	rs := responders()
	if len(rs) != 1 {
		t.Fatalf("responder keys = %+v, want one", rs)
	}
	first := rs[0]
	if first.Cryptoperiod != 2*time.Hour || first.RotationDue == nil || first.Backend != "memory" || first.Metering != inventory.MeteringSite || first.Signatures < 1 {
		t.Errorf("responder key = %+v; want cryptoperiod 2h, rotation due, memory backend, counted uses", first)
	}
	clk.Advance(3 * time.Hour) // past half-life: the next signature rotates it
	ik, err := c.rev.issuerKey(ctx, e.init.IssuingIssuer.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.rev.signerFor(ctx, ik); err != nil {
		t.Fatal(err)
	}
	rs = responders()
	if len(rs) != 2 {
		t.Fatalf("after rotation responder keys = %d, want 2", len(rs))
	}
	for _, k := range rs {
		want := inventory.KeyActive
		if k.ID == first.ID {
			want = inventory.KeyRetired
		}
		if k.Status != want {
			t.Errorf("responder key %s status %s, want %s", k.ID, k.Status, want)
		}
	}
}

// TestSyncKeysAppliesPolicyChange: keys registered under one policy move
// to a changed cryptoperiod at the next sync (init registers the CA keys
// before mica.yaml is edited), with a key.policy event; retired keys keep
// the period they were used under.
func TestSyncKeysAppliesPolicyChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := inventorytest.SQLite(t)
	uri, pass := hsmtest.SoftKMS(t)
	b, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: pass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if _, err := Init(ctx, InitOptions{Store: st, Keys: b, Actor: "test", Logger: discardLogger()}); err != nil {
		t.Fatal(err)
	}
	who := Actor{Name: "test"}
	year := KeyPolicy{Cryptoperiods: map[string]time.Duration{KeyClassRoot: 3650 * day, KeyClassIssuing: 365 * day}}
	if _, err := SyncKeys(ctx, st, b, year, who); err != nil {
		t.Fatal(err)
	}
	if err := st.PutKey(ctx, &inventory.Key{ID: "old-issuing", Class: KeyClassIssuing, Backend: "softkms", Algorithm: "EC-P256",
		Status: inventory.KeyRetired, Cryptoperiod: 365 * day}, inventory.Event{Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	short := KeyPolicy{Cryptoperiods: map[string]time.Duration{KeyClassRoot: 3650 * day, KeyClassIssuing: time.Second}}
	keys, err := SyncKeys(ctx, st, b, short, who)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		switch {
		case k.ID == "old-issuing":
			if k.Cryptoperiod != 365*day {
				t.Errorf("retired key cryptoperiod = %s, want it kept at 365d", k.Cryptoperiod)
			}
		case k.Class == KeyClassIssuing:
			if k.Cryptoperiod != time.Second || k.RotationDue == nil || !k.RotationDue.Equal(k.ActivateAt.Add(time.Second)) {
				t.Errorf("issuing key after a policy change = period %s due %v, want 1s after %v", k.Cryptoperiod, k.RotationDue, k.ActivateAt)
			}
		case k.Class == KeyClassRoot:
			if k.Cryptoperiod != 3650*day {
				t.Errorf("root key cryptoperiod = %s, want unchanged 3650d", k.Cryptoperiod)
			}
		}
	}
	evs, err := st.Events(ctx, inventory.EventFilter{Action: "key.policy"})
	if err != nil || len(evs) != 1 {
		t.Errorf("key.policy events = %d, %v; want 1 (the issuing key only)", len(evs), err)
	}
}
