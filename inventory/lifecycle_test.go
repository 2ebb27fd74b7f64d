package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestStateMachine drives every operation from every stored state.
func TestStateMachine(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "ca")

		// setup returns a certificate in the given state.
		setup := func(state inventory.State) *inventory.Certificate {
			c := reserve(t, s, newCert(t, "ca"))
			switch state {
			case inventory.StateRequested:
			case inventory.StateFailed:
				wantErr(t, s.FailCertificate(ctx, "ca", c.Serial, inventory.Event{}), nil)
			default:
				wantErr(t, s.CompleteCertificate(ctx, "ca", c.Serial, inventorytest.DER(t, c, nil), "", inventory.Event{}), nil)
			}
			switch state {
			case inventory.StateRevoked:
				_, err := s.RevokeCertificate(ctx, "ca", c.Serial, "keyCompromise", time.Time{}, inventory.Event{})
				wantErr(t, err, nil)
			case inventory.StateSuperseded:
				n := newCert(t, "ca")
				n.Predecessor = c.Serial
				n2 := reserve(t, s, n)
				wantErr(t, s.CompleteCertificate(ctx, "ca", n2.Serial, inventorytest.DER(t, n2, nil), "", inventory.Event{}), nil)
			}
			got, err := s.Certificate(ctx, "ca", c.Serial)
			if err != nil || got.State != state {
				t.Fatalf("setup %s: got %v, %v", state, got, err)
			}
			return got
		}
		ops := map[string]func(c *inventory.Certificate) error{
			"complete": func(c *inventory.Certificate) error {
				return s.CompleteCertificate(ctx, "ca", c.Serial, inventorytest.DER(t, c, nil), "", inventory.Event{})
			},
			"fail": func(c *inventory.Certificate) error { return s.FailCertificate(ctx, "ca", c.Serial, inventory.Event{}) },
			"revoke": func(c *inventory.Certificate) error {
				_, err := s.RevokeCertificate(ctx, "ca", c.Serial, "", time.Time{}, inventory.Event{})
				return err
			},
		}
		ok := error(nil)
		tests := []struct {
			from  inventory.State
			op    string
			want  error
			after inventory.State
		}{
			{inventory.StateRequested, "complete", ok, inventory.StateIssued},
			{inventory.StateRequested, "fail", ok, inventory.StateFailed},
			{inventory.StateRequested, "revoke", inventory.ErrConflict, inventory.StateRequested},
			{inventory.StateIssued, "complete", inventory.ErrConflict, inventory.StateIssued},
			{inventory.StateIssued, "fail", inventory.ErrConflict, inventory.StateIssued},
			{inventory.StateIssued, "revoke", ok, inventory.StateRevoked},
			{inventory.StateSuperseded, "complete", inventory.ErrConflict, inventory.StateSuperseded},
			{inventory.StateSuperseded, "fail", inventory.ErrConflict, inventory.StateSuperseded},
			{inventory.StateSuperseded, "revoke", ok, inventory.StateRevoked},
			{inventory.StateRevoked, "complete", inventory.ErrConflict, inventory.StateRevoked},
			{inventory.StateRevoked, "fail", inventory.ErrConflict, inventory.StateRevoked},
			{inventory.StateRevoked, "revoke", inventory.ErrConflict, inventory.StateRevoked},
			{inventory.StateFailed, "complete", inventory.ErrConflict, inventory.StateFailed},
			{inventory.StateFailed, "fail", inventory.ErrConflict, inventory.StateFailed},
			{inventory.StateFailed, "revoke", inventory.ErrConflict, inventory.StateFailed},
		}
		for _, tt := range tests {
			c := setup(tt.from)
			before, _ := s.Events(ctx, inventory.EventFilter{Object: "cert:ca/" + c.Serial})
			err := ops[tt.op](c)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("%s from %s: err = %v, want %v", tt.op, tt.from, err, tt.want)
				continue
			}
			got, _ := s.Certificate(ctx, "ca", c.Serial)
			if got.State != tt.after {
				t.Errorf("%s from %s: state %s, want %s", tt.op, tt.from, got.State, tt.after)
			}
			after, _ := s.Events(ctx, inventory.EventFilter{Object: "cert:ca/" + c.Serial})
			wantEvents := len(before)
			if tt.want == nil {
				wantEvents++ // every transition writes exactly one event
			}
			if len(after) != wantEvents {
				t.Errorf("%s from %s: %d events, want %d", tt.op, tt.from, len(after), wantEvents)
			}
			if tt.from == inventory.StateRevoked && tt.op == "revoke" && !strings.Contains(err.Error(), "already revoked") {
				t.Errorf("revoking twice: message %q does not say already revoked", err)
			}
		}
		// Absent certificates.
		for name, op := range ops {
			missing := &inventory.Certificate{Serial: "abcdef0123", NotBefore: t0, NotAfter: t0.Add(time.Hour)}
			if err := op(missing); !errors.Is(err, inventory.ErrNotFound) {
				t.Errorf("%s on missing cert: %v", name, err)
			}
		}
		_, err := s.Certificate(ctx, "ca", "not-hex")
		wantErr(t, err, inventory.ErrNotFound)
		_, err = s.Certificate(ctx, "other-ca", "abcdef0123")
		wantErr(t, err, inventory.ErrNotFound)
	})
}

func TestSupersededChain(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "old-ca")
		inventorytest.Issuer(t, s, "new-ca")
		issue := func(issuer, pred, predIssuer string) *inventory.Certificate {
			c := newCert(t, issuer)
			c.Predecessor, c.PredecessorIssuerID = pred, predIssuer
			return inventorytest.Issue(t, s, c)
		}
		a := issue("old-ca", "", "")
		b := issue("old-ca", strings.ToUpper(a.Serial), "") // typed serial is normalised
		if b.Predecessor != a.Serial || b.PredecessorIssuerID != "" {
			t.Fatalf("predecessor stored as %q/%q", b.PredecessorIssuerID, b.Predecessor)
		}
		c := issue("new-ca", b.Serial, "old-ca") // renewal across a CA rotation

		for _, tt := range []struct {
			cert  *inventory.Certificate
			state inventory.State
			by    string
		}{{a, inventory.StateSuperseded, b.Serial}, {b, inventory.StateSuperseded, c.Serial}, {c, inventory.StateIssued, ""}} {
			got, err := s.Certificate(ctx, tt.cert.IssuerID, tt.cert.Serial)
			if err != nil || got.State != tt.state || got.SupersededBy != tt.by {
				t.Errorf("%s: state %s by %q, want %s by %q (%v)", tt.cert.Serial, got.State, got.SupersededBy, tt.state, tt.by, err)
			}
		}
		evs, _ := s.Events(ctx, inventory.EventFilter{Action: "cert.supersede", Object: "cert:old-ca/" + b.Serial})
		if len(evs) != 1 || !strings.Contains(string(evs[0].Details), "new-ca/"+c.Serial) {
			t.Errorf("supersede event = %+v", evs)
		}

		// A second renewal of the same predecessor repoints SupersededBy.
		d := issue("new-ca", b.Serial, "old-ca")
		if got, _ := s.Certificate(ctx, "old-ca", b.Serial); got.SupersededBy != d.Serial {
			t.Errorf("superseded_by = %q, want newest renewal %q", got.SupersededBy, d.Serial)
		}
		// A revoked predecessor stays revoked; a missing one is ignored.
		_, err := s.RevokeCertificate(ctx, "new-ca", d.Serial, "keyCompromise", time.Time{}, inventory.Event{})
		wantErr(t, err, nil)
		e := issue("new-ca", d.Serial, "")
		if got, _ := s.Certificate(ctx, "new-ca", d.Serial); got.State != inventory.StateRevoked || got.SupersededBy != "" {
			t.Errorf("revoked predecessor changed: %+v", got)
		}
		issue("new-ca", "fedcba9876", "")
		// Superseded certificates can still be revoked.
		got, err := s.RevokeCertificate(ctx, "old-ca", a.Serial, "superseded", time.Time{}, inventory.Event{})
		if err != nil || got.State != inventory.StateRevoked || got.SupersededBy != b.Serial {
			t.Errorf("revoke superseded: %+v, %v", got, err)
		}
		_ = e
	})
}

func TestRevoke(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "ca")
		c := inventorytest.Issue(t, s, newCert(t, "ca"))

		for _, reason := range []string{"certificateHold", "removeFromCRL", "KeyCompromise", "bogus"} {
			_, err := s.RevokeCertificate(ctx, "ca", c.Serial, reason, time.Time{}, inventory.Event{})
			wantErr(t, err, inventory.ErrInvalid)
		}
		at := time.Date(2031, 2, 3, 4, 5, 6, 789123456, time.FixedZone("X", 3600))
		got, err := s.RevokeCertificate(ctx, "ca", strings.ToUpper(c.Serial), "keyCompromise", at, inventory.Event{Actor: "bob", Source: "192.0.2.1"})
		if err != nil {
			t.Fatal(err)
		}
		wantAt := at.UTC().Truncate(time.Microsecond)
		if got.State != inventory.StateRevoked || got.RevocationReason != "keyCompromise" || got.RevokedAt == nil || !got.RevokedAt.Equal(wantAt) || len(got.DER) == 0 || len(got.SANs) != 1 {
			t.Fatalf("revoked = %+v", got)
		}
		read, _ := s.Certificate(ctx, "ca", c.Serial)
		if read.RevokedAt == nil || !read.RevokedAt.Equal(wantAt) || read.RevokedAt.Location() != time.UTC {
			t.Fatalf("stored revoked_at = %v, want %v", read.RevokedAt, wantAt)
		}
		_, err = s.RevokeCertificate(ctx, "ca", c.Serial, "keyCompromise", time.Time{}, inventory.Event{})
		if !errors.Is(err, inventory.ErrConflict) || !strings.Contains(err.Error(), "already revoked") {
			t.Fatalf("second revoke: %v", err)
		}
		evs, _ := s.Events(ctx, inventory.EventFilter{Action: "cert.revoke"})
		if len(evs) != 1 || evs[0].Actor != "bob" || evs[0].Source != "192.0.2.1" || string(evs[0].Details) != `{"reason":"keyCompromise"}` {
			t.Fatalf("revoke events = %+v", evs)
		}
		// Empty reason means unspecified.
		d := inventorytest.Issue(t, s, newCert(t, "ca"))
		got, err = s.RevokeCertificate(ctx, "ca", d.Serial, "", time.Time{}, inventory.Event{})
		if err != nil || got.RevocationReason != "unspecified" {
			t.Fatalf("default reason: %+v, %v", got, err)
		}
	})
}

// Racing revocations of one certificate (two admins, two replicas): one
// wins, the rest get "already revoked", and exactly one event is written.
func TestConcurrentRevokeOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "ca")
		c := inventorytest.Issue(t, s, newCert(t, "ca"))
		const racers = 12
		var ok, conflict atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.RevokeCertificate(ctx, "ca", c.Serial, "keyCompromise", time.Time{}, inventory.Event{Actor: fmt.Sprintf("admin%d", i)})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, inventory.ErrConflict):
					conflict.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || conflict.Load() != racers-1 {
			t.Fatalf("%d revocations succeeded, %d conflicts", ok.Load(), conflict.Load())
		}
		evs, _ := s.Events(ctx, inventory.EventFilter{Action: "cert.revoke"})
		if len(evs) != 1 {
			t.Fatalf("%d revoke events", len(evs))
		}
	})
}
