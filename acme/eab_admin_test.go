package acme_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestEABAdmin: keys are made only for configured directories, stored
// sealed (the binding check opens them with the HSM-derived key), listed
// without the key, and their creation is audited with the caller's
// protocol.
func TestEABAdmin(t *testing.T) {
	t.Parallel()
	st := inventorytest.SQLite(t)
	ctx := context.Background()
	sealer := newSealer(t, nil)
	a := &acme.EABAdmin{Store: st, Sealer: sealer}
	if got := a.EABProfiles(); len(got) != 1 || got[0] != "default" {
		t.Errorf("EABProfiles with no configuration = %q, want the defaults", got)
	}
	if _, _, err := a.CreateEABKey(ctx, "corp", inventory.Event{Actor: "user:root"}); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("CreateEABKey(unknown directory) = %v, want ErrInvalid", err)
	}
	kid, key, err := a.CreateEABKey(ctx, "default", inventory.Event{Actor: "user:root", Protocol: "ui", Source: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := st.ACMEEABKey(ctx, kid)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := acme.OpenEABKey(sealer, k)
	want, _ := base64.RawURLEncoding.DecodeString(key)
	if err != nil || !bytes.Equal(opened, want) || bytes.Contains(k.Sealed, want) {
		t.Errorf("OpenEABKey = %x, %v; want the handed-out key, sealed", opened, err)
	}
	evs, err := st.Events(ctx, inventory.EventFilter{Action: "acme.eab.create"})
	if err != nil || len(evs) != 1 || evs[0].Protocol != "ui" || evs[0].Actor != "user:root" || evs[0].Source != "127.0.0.1" {
		t.Errorf("create events = %+v, %v; want one by user:root over ui", evs, err)
	}
	keys, err := a.EABKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].KeyID != kid || len(keys[0].Sealed) != 0 {
		t.Errorf("EABKeys = %+v, %v", keys, err)
	}
	if err := a.RevokeEABKey(ctx, kid, inventory.Event{Actor: "user:root"}); err != nil {
		t.Errorf("RevokeEABKey = %v", err)
	}
}
