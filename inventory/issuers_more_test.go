package inventory_test

import (
	"context"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestOCSPCoverageAndLastLogins: coverage counts only unexpired
// certificates, finds the oldest response and the ones without any; the
// last successful event per object ignores failures.
func TestOCSPCoverageAndLastLogins(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "ca")
		now := time.Now().UTC().Truncate(time.Second)
		for i, life := range []time.Duration{48 * time.Hour, 48 * time.Hour, 48 * time.Hour, -time.Hour} {
			c := inventorytest.Issue(t, s, inventory.Certificate{IssuerID: "ca", Serial: inventorytest.RandomSerial(t), CommonName: "c.test",
				NotBefore: now.Add(-72 * time.Hour), NotAfter: now.Add(life), Profile: "server", Protocol: "cli"})
			if i == 2 {
				continue // no response
			}
			this := now.Add(-time.Duration(i+1) * time.Hour)
			wantErr(t, s.PutOCSPResponse(ctx, &inventory.OCSPResponse{IssuerID: "ca", Serial: c.Serial, Status: "good",
				ThisUpdate: this, NextUpdate: this.Add(24 * time.Hour), DER: []byte{0x30}}), nil)
		}
		cov, err := s.OCSPCoverage(ctx, "ca", now)
		wantErr(t, err, nil)
		// The expired certificate's response (3h old) does not count.
		if cov.Responses != 2 || cov.Missing != 1 || !cov.Oldest.Equal(now.Add(-2*time.Hour)) {
			t.Errorf("OCSPCoverage = %+v, want 2 responses, 1 missing, oldest %v", cov, now.Add(-2*time.Hour))
		}
		empty, err := s.OCSPCoverage(ctx, "nobody", now)
		wantErr(t, err, nil)
		if empty.Responses != 0 || empty.Missing != 0 || !empty.Oldest.IsZero() {
			t.Errorf("OCSPCoverage of an issuer without certificates = %+v", empty)
		}

		for _, ev := range []inventory.Event{
			{Actor: "user:ann", Action: "ui.login", Object: "user:ann", Outcome: "ok"},
			{Actor: "user:ann", Action: "ui.login", Object: "user:ann", Outcome: "denied"},
			{Actor: "user:bob", Action: "ui.login", Object: "user:bob", Outcome: "denied"},
		} {
			if _, err := s.AppendEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		last, err := s.LastEventByObject(ctx, "ui.login", "ok")
		wantErr(t, err, nil)
		if len(last) != 1 || last["user:ann"].IsZero() {
			t.Errorf("LastEventByObject = %v, want only user:ann", last)
		}
	})
}
