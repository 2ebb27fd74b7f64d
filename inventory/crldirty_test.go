package inventory_test

import (
	"context"
	"testing"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestCRLDirtyMark: a revocation commits its issuer's dirty mark with it;
// a second revocation bumps the generation but keeps the first time; a
// clear against a stale generation keeps the mark, one against the
// current generation removes it; a failed revocation leaves no mark.
func TestCRLDirtyMark(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "ca")
		a := inventorytest.Issue(t, s, newCert(t, "ca"))
		b := inventorytest.Issue(t, s, newCert(t, "ca"))
		if _, err := s.CRLDirtyMark(ctx, "ca"); err == nil {
			t.Fatal("a fresh issuer has a dirty CRL mark")
		}
		if _, err := s.RevokeCertificate(ctx, "ca", a.Serial, "superseded", t0, inventory.Event{Actor: "t"}); err != nil {
			t.Fatal(err)
		}
		first, err := s.CRLDirtyMark(ctx, "ca")
		if err != nil {
			t.Fatalf("after a revocation: %v, want a mark", err)
		}
		// Revoking a again fails and must not touch the mark.
		if _, err := s.RevokeCertificate(ctx, "ca", a.Serial, "superseded", t0, inventory.Event{Actor: "t"}); err == nil {
			t.Fatal("second revocation of the same certificate succeeded")
		}
		if m, _ := s.CRLDirtyMark(ctx, "ca"); m == nil || m.Generation != first.Generation {
			t.Fatalf("a refused revocation changed the mark: %+v, was %+v", m, first)
		}
		if _, err := s.RevokeCertificate(ctx, "ca", b.Serial, "superseded", t0, inventory.Event{Actor: "t"}); err != nil {
			t.Fatal(err)
		}
		second, err := s.CRLDirtyMark(ctx, "ca")
		if err != nil || second.Generation <= first.Generation || !second.Since.Equal(first.Since) {
			t.Fatalf("after a second revocation: %+v %v; want a higher generation and the first time %v", second, err, first.Since)
		}
		if marks, err := s.CRLDirtyMarks(ctx); err != nil || len(marks) != 1 || marks[0].IssuerID != "ca" {
			t.Fatalf("CRLDirtyMarks = %+v %v", marks, err)
		}
		if ok, err := s.ClearCRLDirty(ctx, "ca", first.Generation); err != nil || ok {
			t.Fatalf("clear with the stale generation = %v %v; want kept", ok, err)
		}
		if ok, err := s.ClearCRLDirty(ctx, "ca", second.Generation); err != nil || !ok {
			t.Fatalf("clear with the current generation = %v %v; want cleared", ok, err)
		}
		if marks, err := s.CRLDirtyMarks(ctx); err != nil || len(marks) != 0 {
			t.Fatalf("after the clear: %+v %v", marks, err)
		}
	})
}
