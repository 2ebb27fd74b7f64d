package acme_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"testing"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// newSealer derives an EAB sealer from a fresh software key backend;
// legacy is the v1 secret it may open old keys with.
func newSealer(t *testing.T, legacy []byte) *acme.EABSealer {
	t.Helper()
	ctx := context.Background()
	uri, pass := hsmtest.SoftKMS(t)
	keys, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: pass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	s, err := acme.NewEABSealer(ctx, keys, legacy)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A stored EAB key is sealed under the HSM-derived key: the old
// passphrase-derived key does not open it, and neither does another
// backend opened with the very same passphrase. The same backend opened
// again (another replica) derives the same key and does.
func TestEABKeySealedByHSM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := inventorytest.SQLite(t)
	uri, pass := hsmtest.SoftKMS(t)
	open := func() *acme.EABSealer {
		keys, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: pass})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { keys.Close() })
		s, err := acme.NewEABSealer(ctx, keys, pass.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	replica1, replica2 := open(), open()
	kid, key, err := acme.CreateEABKey(ctx, st, replica1, "default", inventory.Event{Actor: "cli:test"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := st.ACMEEABKey(ctx, kid)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := base64.RawURLEncoding.DecodeString(key)
	if got, err := acme.OpenEABKey(replica2, k); err != nil || !bytes.Equal(got, want) {
		t.Errorf("another replica opens the key = %x, %v; want the handed-out key", got, err)
	}
	for _, c := range [][]byte{k.Sealed, bytes.TrimPrefix(k.Sealed, []byte("MEK2"))} {
		if _, err := acme.OpenEABKeyV1(pass.Bytes(), kid, c); err == nil {
			t.Error("the stored key opens with the passphrase-derived (v1) key")
		}
	}
	if _, err := acme.OpenEABKey(newSealer(t, pass.Bytes()), k); err == nil {
		t.Error("the stored key opens with another backend that has the same passphrase")
	}
}

// A store holding keys sealed the old way migrates at start: two
// replicas re-wrap concurrently, each key once and audited once; a second
// pass changes nothing; afterwards no stored key opens with the
// passphrase-derived key, and a real ACME client (x/crypto/acme) binds
// an account with a migrated key.
func TestEABKeysMigrateAndStillBind(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := inventorytest.SQLite(t)
	e := newEnv(t, st, func(o *acme.Options) {
		o.Profiles = map[string]acme.Profile{"corp": {CAProfiles: []string{"server"}, EAB: acme.EABRequired}}
	})
	const legacy = "test-eab-secret" // what the harness's sealer was given as v1 secret
	hmacKeys := map[string][]byte{}
	for i := range 5 {
		kid := "eab-old" + string(rune('a'+i))
		raw := make([]byte, 32)
		rand.Read(raw)
		sealed, err := acme.SealEABKeyV1([]byte(legacy), kid, raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateACMEEABKey(ctx, &inventory.ACMEEABKey{KeyID: kid, Profile: "corp", Sealed: sealed, CreatedBy: "old"}, inventory.Event{Actor: "old"}); err != nil {
			t.Fatal(err)
		}
		hmacKeys[kid] = raw
	}
	var wg sync.WaitGroup
	counts := make([]int, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i], errs[i] = e.opts.EABSealer.MigrateEABKeys(ctx, st, inventory.Event{Actor: "system", Source: "replica"})
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || counts[0]+counts[1] != len(hmacKeys) {
		t.Fatalf("concurrent migrations = %v, %v; want %d keys re-wrapped in all", counts, errs, len(hmacKeys))
	}
	if n, err := e.opts.EABSealer.MigrateEABKeys(ctx, st, inventory.Event{Actor: "system"}); n != 0 || err != nil {
		t.Errorf("second migration = %d, %v; want nothing to do", n, err)
	}
	evs, err := st.Events(ctx, inventory.EventFilter{Action: "acme.eab.rewrap"})
	if err != nil || len(evs) != len(hmacKeys) {
		t.Fatalf("rewrap events = %d, %v; want %d", len(evs), err, len(hmacKeys))
	}
	for _, ev := range evs {
		if ev.Actor != "system" || !strings.HasPrefix(ev.Object, "acme-eab:eab-old") || !strings.Contains(string(ev.Details), "HSM") {
			t.Errorf("rewrap event %+v", ev)
		}
	}
	for kid := range hmacKeys {
		k, err := st.ACMEEABKey(ctx, kid)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := acme.OpenEABKeyV1([]byte(legacy), kid, bytes.TrimPrefix(k.Sealed, []byte("MEK2"))); err == nil {
			t.Errorf("%s still opens with the passphrase-derived key after migration", kid)
		}
	}
	for kid, raw := range hmacKeys {
		c := e.newClient(newKey(t), "corp")
		if _, err := c.Register(ctx, &xacme.Account{ExternalAccountBinding: &xacme.ExternalAccountBinding{KID: kid, Key: raw}}, xacme.AcceptTOS); err != nil {
			t.Fatalf("Register with migrated EAB key %s: %v", kid, err)
		}
		break
	}
}

// The same on a real PKCS#11 token (SoftHSM2; required under
// MICA_REQUIRE_SOFTHSM=1): the sealing key is generated on the token, two
// sessions (replicas) derive the same key, the PIN-derived key opens
// nothing, and an old PIN-sealed key migrates and opens. Not parallel:
// SOFTHSM2_CONF is process-wide.
func TestEABSealerSoftHSM(t *testing.T) {
	uri, pin := hsmtest.SoftHSM(t)
	ctx := context.Background()
	st := inventorytest.SQLite(t)
	open := func() *acme.EABSealer {
		keys, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: pin})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { keys.Close() })
		s, err := acme.NewEABSealer(ctx, keys, pin.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := open(), open()
	kid, key, err := acme.CreateEABKey(ctx, st, a, "default", inventory.Event{Actor: "cli:test"})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := st.ACMEEABKey(ctx, kid)
	want, _ := base64.RawURLEncoding.DecodeString(key)
	if got, err := acme.OpenEABKey(b, k); err != nil || !bytes.Equal(got, want) {
		t.Errorf("second session opens = %x, %v", got, err)
	}
	if _, err := acme.OpenEABKeyV1(pin.Bytes(), kid, bytes.TrimPrefix(k.Sealed, []byte("MEK2"))); err == nil {
		t.Error("the stored key opens with the PIN-derived key")
	}
	old := []byte("an old hmac key, 32 bytes long!!")
	sealed, _ := acme.SealEABKeyV1(pin.Bytes(), "eab-old", old)
	if err := st.CreateACMEEABKey(ctx, &inventory.ACMEEABKey{KeyID: "eab-old", Profile: "default", Sealed: sealed, CreatedBy: "old"}, inventory.Event{Actor: "old"}); err != nil {
		t.Fatal(err)
	}
	if n, err := b.MigrateEABKeys(ctx, st, inventory.Event{Actor: "system"}); n != 1 || err != nil {
		t.Fatalf("migration = %d, %v; want 1 key", n, err)
	}
	k, _ = st.ACMEEABKey(ctx, "eab-old")
	if got, err := acme.OpenEABKey(open(), k); err != nil || !bytes.Equal(got, old) {
		t.Errorf("migrated key opens = %q, %v", got, err)
	}
	if _, err := acme.OpenEABKeyV1(pin.Bytes(), "eab-old", bytes.TrimPrefix(k.Sealed, []byte("MEK2"))); err == nil {
		t.Error("the migrated key still opens with the PIN-derived key")
	}
}
