package inventory_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

func TestIssuers(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		root := inventorytest.Issuer(t, s, "root-1")

		got, err := s.Issuer(ctx, "root-1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Subject != root.Subject || !got.IsRoot || got.Status != "active" || !bytes.Equal(got.DER, root.DER) ||
			!got.NotAfter.Equal(root.NotAfter) || !got.CreatedAt.Equal(root.CreatedAt) || got.SKI != root.SKI || got.SKI == "" {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, root)
		}
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt not UTC: %v", got.CreatedAt)
		}

		// Duplicate id.
		dup := *root
		wantErr(t, s.PutIssuer(ctx, &dup, inventory.Event{}), inventory.ErrDuplicate)

		// Validation.
		for _, bad := range []inventory.Issuer{
			{ID: "", DER: []byte{1}},
			{ID: "has space", DER: []byte{1}},
			{ID: "../etc", DER: []byte{1}},
			{ID: "ok-id"},                                 // no DER
			{ID: "ok-id", DER: []byte{1}, SKI: "not hex"}, // bad SKI
			{ID: "ok-id", DER: []byte{1}, Subject: "a\x00b"},
		} {
			b := bad
			wantErr(t, s.PutIssuer(ctx, &b, inventory.Event{}), inventory.ErrInvalid)
		}

		sub := &inventory.Issuer{ID: "issuing-1", ParentID: "root-1", Subject: "CN=Issuing", KeyURI: "pkcs11:token=mica;object=issuing-1",
			KeyType: "EC-P384", SKI: "AB:CD", NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), DER: []byte{0x30, 0x00},
			CreatedAt: root.CreatedAt.Add(time.Second)}
		if err := s.PutIssuer(ctx, sub, inventory.Event{Actor: "op"}); err != nil {
			t.Fatal(err)
		}
		if sub.SKI != "abcd" || sub.Status != "active" {
			t.Errorf("normalisation not written back: %+v", sub)
		}

		list, err := s.Issuers(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "root-1" || list[1].ID != "issuing-1" {
			t.Fatalf("Issuers = %+v, %v", list, err)
		}

		if err := s.UpdateIssuerStatus(ctx, "issuing-1", "retired", inventory.Event{Actor: "op"}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Issuer(ctx, "issuing-1"); got.Status != "retired" {
			t.Errorf("status = %q", got.Status)
		}
		wantErr(t, s.UpdateIssuerStatus(ctx, "nope", "retired", inventory.Event{}), inventory.ErrNotFound)
		wantErr(t, s.UpdateIssuerStatus(ctx, "issuing-1", "", inventory.Event{}), inventory.ErrInvalid)
		_, err = s.Issuer(ctx, "nope")
		wantErr(t, err, inventory.ErrNotFound)

		// Each successful change wrote exactly one event, with defaults.
		evs, err := s.Events(ctx, inventory.EventFilter{Action: "issuer."})
		if err != nil || len(evs) != 3 {
			t.Fatalf("issuer events = %d, %v", len(evs), err)
		}
		if evs[0].Action != "issuer.status" || evs[0].Object != "issuer:issuing-1" || string(evs[0].Details) != `{"status":"retired"}` {
			t.Errorf("status event = %+v", evs[0])
		}
		if evs[2].Action != "issuer.create" || evs[2].Object != "issuer:root-1" {
			t.Errorf("create event = %+v", evs[2])
		}
	})
}
