package acme_test

import (
	"encoding/base64"
	"net/http"
	"testing"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestEAB: a profile requiring external account binding refuses plain
// accounts, accepts a key made by CreateEABKey once, and never for
// another profile.
func TestEAB(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := inventorytest.SQLite(t)
	e := newEnv(t, st, func(o *acme.Options) {
		o.Profiles = map[string]acme.Profile{"default": {CAProfiles: []string{"server"}},
			"corp": {CAProfiles: []string{"server", "client"}, EAB: acme.EABRequired}}
	})
	kid, key, err := acme.CreateEABKey(ctx, st, e.opts.EABSealer, "corp", inventory.Event{Actor: "cli:test", Source: "host"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil || len(raw) != 32 {
		t.Fatalf("EAB key %q: %v", key, err)
	}
	stored, err := st.ACMEEABKey(ctx, kid)
	if err != nil || string(stored.Sealed) == string(raw) || len(stored.Sealed) < len(raw) {
		t.Fatalf("EAB key stored in clear or missing: %v", err)
	}

	dir, err := e.newClient(newKey(t), "corp").Discover(ctx)
	if err != nil || !dir.ExternalAccountRequired {
		t.Fatalf("corp directory = %+v, %v; want externalAccountRequired", dir, err)
	}
	_, err = e.newClient(newKey(t), "corp").Register(ctx, &xacme.Account{}, xacme.AcceptTOS)
	wantProblem(t, err, "externalAccountRequired", http.StatusUnauthorized)

	wrong := &xacme.ExternalAccountBinding{KID: kid, Key: []byte("not the key, but 32 bytes long!!")}
	_, err = e.newClient(newKey(t), "corp").Register(ctx, &xacme.Account{ExternalAccountBinding: wrong}, xacme.AcceptTOS)
	wantProblem(t, err, "unauthorized", http.StatusForbidden)

	eab := &xacme.ExternalAccountBinding{KID: kid, Key: raw}
	c := e.newClient(newKey(t), "corp")
	if _, err := c.Register(ctx, &xacme.Account{ExternalAccountBinding: eab}, xacme.AcceptTOS); err != nil {
		t.Fatalf("Register with EAB: %v", err)
	}
	_, err = e.newClient(newKey(t), "corp").Register(ctx, &xacme.Account{ExternalAccountBinding: eab}, xacme.AcceptTOS)
	wantProblem(t, err, "unauthorized", http.StatusForbidden)

	// The corp account cannot be used in another directory.
	_, err = e.newClient(c.Key, "default").AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "x.test"}})
	wantProblem(t, err, "malformed", http.StatusBadRequest)
}
