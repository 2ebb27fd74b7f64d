package inventory_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

func TestReserveCompleteRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "ca")
		in := newCert(t, "ca")
		raw := strings.ToUpper(in.Serial)
		in.Serial = "00:" + raw // typed spelling
		in.SANs = []string{"dns:host.example.test", "DNS:Alt.Example.TEST", "ip:10.0.0.1", "ip:2001:db8::1",
			"uri:spiffe://example.test/Workload", "email:ops@example.test"}
		in.NotBefore = in.NotBefore.Add(123456789 * time.Nanosecond) // sub-µs digits must go
		in.DER = []byte("ignored")
		in.State = inventory.StateRevoked // ignored: reservations start requested
		c := reserve(t, s, in)

		if c.ID == 0 || c.State != inventory.StateRequested || c.DER != nil || c.CreatedAt.IsZero() {
			t.Fatalf("reserved = %+v", c)
		}
		if c.Serial != strings.ToLower(raw) {
			t.Fatalf("serial not normalised: %q", c.Serial)
		}
		if c.NotBefore.Nanosecond()%1000 != 0 || c.NotBefore.Location() != time.UTC {
			t.Fatalf("NotBefore not normalised: %v", c.NotBefore)
		}
		got, err := s.Certificate(ctx, "ca", raw) // upper case finds it too
		if err != nil {
			t.Fatal(err)
		}
		wantSANs := []string{"dns:host.example.test", "dns:Alt.Example.TEST", "ip:10.0.0.1", "ip:2001:db8::1",
			"uri:spiffe://example.test/Workload", "email:ops@example.test"}
		if !slices.Equal(got.SANs, wantSANs) {
			t.Errorf("SANs = %q, want %q", got.SANs, wantSANs)
		}
		if !got.NotBefore.Equal(c.NotBefore) || !got.NotAfter.Equal(c.NotAfter) || !got.CreatedAt.Equal(c.CreatedAt) ||
			got.Subject != c.Subject || got.Profile != "server" || got.Requester != "alice" || got.Protocol != "cli" ||
			got.KeyType != "EC-P256" || got.State != inventory.StateRequested {
			t.Errorf("read back:\n got %+v\nwant %+v", got, c)
		}

		// Complete: the DER is the truth for validity; fingerprint may be given with colons.
		c.NotBefore = c.NotBefore.Truncate(time.Second)
		der := inventorytest.DER(t, c, nil)
		sum := sha256.Sum256(der)
		fp := strings.ToUpper(hex.EncodeToString(sum[:]))
		var colons []string
		for i := 0; i < len(fp); i += 2 {
			colons = append(colons, fp[i:i+2])
		}
		if err := s.CompleteCertificate(ctx, "ca", "0x"+raw, der, strings.Join(colons, ":"), inventory.Event{Actor: "alice", Protocol: "cli"}); err != nil {
			t.Fatal(err)
		}
		got, err = s.Certificate(ctx, "ca", c.Serial)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != inventory.StateIssued || string(got.DER) != string(der) || got.FingerprintSHA256 != strings.ToLower(fp) ||
			len(got.PublicKeySHA256) != 64 || !got.NotBefore.Equal(c.NotBefore) || got.UpdatedAt.Before(got.CreatedAt) {
			t.Fatalf("completed = %+v", got)
		}
		evs, _ := s.Events(ctx, inventory.EventFilter{Object: "cert:ca/" + c.Serial})
		if len(evs) != 1 || evs[0].Action != "cert.issue" || evs[0].Actor != "alice" {
			t.Fatalf("issue events = %+v", evs)
		}
	})
}

func TestReserveValidation(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "ca")
		mut := func(f func(c *inventory.Certificate)) inventory.Certificate {
			c := newCert(t, "ca")
			f(&c)
			return c
		}
		tests := []struct {
			name string
			c    inventory.Certificate
			want error
		}{
			{"unknown issuer", mut(func(c *inventory.Certificate) { c.IssuerID = "nope" }), inventory.ErrNotFound},
			{"no issuer", mut(func(c *inventory.Certificate) { c.IssuerID = "" }), inventory.ErrInvalid},
			{"bad serial", mut(func(c *inventory.Certificate) { c.Serial = "xyz" }), inventory.ErrInvalid},
			{"empty serial", mut(func(c *inventory.Certificate) { c.Serial = "" }), inventory.ErrInvalid},
			{"no not_after", mut(func(c *inventory.Certificate) { c.NotAfter = time.Time{} }), inventory.ErrInvalid},
			{"inverted validity", mut(func(c *inventory.Certificate) { c.NotAfter = c.NotBefore.Add(-time.Second) }), inventory.ErrInvalid},
			{"SAN without kind", mut(func(c *inventory.Certificate) { c.SANs = []string{"host.test"} }), inventory.ErrInvalid},
			{"SAN empty value", mut(func(c *inventory.Certificate) { c.SANs = []string{"dns:"} }), inventory.ErrInvalid},
			{"SAN bad kind", mut(func(c *inventory.Certificate) { c.SANs = []string{"d n s:x"} }), inventory.ErrInvalid},
			{"NUL in CN", mut(func(c *inventory.Certificate) { c.CommonName = "a\x00b" }), inventory.ErrInvalid},
			{"invalid UTF-8 subject", mut(func(c *inventory.Certificate) { c.Subject = "CN=\xff" }), inventory.ErrInvalid},
			{"bad pubkey hash", mut(func(c *inventory.Certificate) { c.PublicKeySHA256 = "abc" }), inventory.ErrInvalid},
			{"bad predecessor", mut(func(c *inventory.Certificate) { c.Predecessor = "zz" }), inventory.ErrInvalid},
		}
		for _, tt := range tests {
			c := tt.c
			before := c
			err := s.ReserveCertificate(ctx, &c)
			if !errors.Is(err, tt.want) {
				t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
			}
			if c.ID != 0 || c.Serial != before.Serial {
				t.Errorf("%s: certificate modified on error", tt.name)
			}
		}
		wantErr(t, s.ReserveCertificate(ctx, nil), inventory.ErrInvalid)
		if n, _ := s.Count(ctx, inventory.CertFilter{}); n != 0 {
			t.Errorf("%d rows after failed reservations", n)
		}
	})
}

func TestDuplicateSerial(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "ca1")
		inventorytest.Issuer(t, s, "ca2")
		c := reserve(t, s, newCert(t, "ca1"))

		again := newCert(t, "ca1")
		again.Serial = "00:" + strings.ToUpper(c.Serial) // same serial, other spelling
		err := s.ReserveCertificate(ctx, &again)
		wantErr(t, err, inventory.ErrDuplicate)
		if again.ID != 0 {
			t.Error("ID set on a failed reservation")
		}
		// The same serial under another issuer is a different certificate.
		other := newCert(t, "ca2")
		other.Serial = c.Serial
		reserve(t, s, other)
		// A failed reservation keeps its serial claimed.
		wantErr(t, s.FailCertificate(ctx, "ca1", c.Serial, inventory.Event{}), nil)
		again.Serial = c.Serial
		wantErr(t, s.ReserveCertificate(ctx, &again), inventory.ErrDuplicate)
	})
}

func TestCompleteRejectsMismatchedDER(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "ca")
		c := reserve(t, s, newCert(t, "ca"))
		other := *c
		other.Serial = inventorytest.RandomSerial(t)
		der := inventorytest.DER(t, c, nil)

		wantErr(t, s.CompleteCertificate(ctx, "ca", c.Serial, []byte("garbage"), "", inventory.Event{}), inventory.ErrInvalid)
		wantErr(t, s.CompleteCertificate(ctx, "ca", c.Serial, inventorytest.DER(t, &other, nil), "", inventory.Event{}), inventory.ErrInvalid)
		wantErr(t, s.CompleteCertificate(ctx, "ca", c.Serial, der, strings.Repeat("ab", 32), inventory.Event{}), inventory.ErrInvalid)
		wantErr(t, s.CompleteCertificate(ctx, "ca", c.Serial, der, "short", inventory.Event{}), inventory.ErrInvalid)

		// A reservation that recorded the CSR's key only accepts that key.
		pinned := newCert(t, "ca")
		pinned.PublicKeySHA256 = strings.Repeat("0", 64)
		p := reserve(t, s, pinned)
		wantErr(t, s.CompleteCertificate(ctx, "ca", p.Serial, inventorytest.DER(t, p, nil), "", inventory.Event{}), inventory.ErrInvalid)

		got, _ := s.Certificate(ctx, "ca", c.Serial)
		if got.State != inventory.StateRequested {
			t.Fatalf("state after rejected completions: %s", got.State)
		}
		wantErr(t, s.CompleteCertificate(ctx, "ca", c.Serial, der, "", inventory.Event{}), nil)
	})
}

// Many writers reserving at once: no SQLITE_BUSY, no lost rows, and each
// contested serial is won exactly once.
func TestConcurrentReservations(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "ca")
		const workers, each = 20, 10
		contested := inventorytest.RandomSerial(t)
		var wins, dups atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					c := newCert(t, "ca")
					if i == 0 {
						c.Serial = contested
					}
					err := s.ReserveCertificate(ctx, &c)
					switch {
					case err == nil && i == 0:
						wins.Add(1)
					case errors.Is(err, inventory.ErrDuplicate) && i == 0:
						dups.Add(1)
						continue
					case err != nil:
						errs <- fmt.Errorf("worker %d: %w", w, err)
						continue
					}
					if err := s.CompleteCertificate(ctx, "ca", c.Serial, inventorytest.DER(t, &c, nil), "", inventory.Event{}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if wins.Load() != 1 || dups.Load() != workers-1 {
			t.Errorf("contested serial: %d wins, %d duplicates", wins.Load(), dups.Load())
		}
		n, err := s.Count(ctx, inventory.CertFilter{States: []inventory.State{inventory.StateIssued}, Now: t0})
		if err != nil || n != workers*(each-1)+1 {
			t.Errorf("issued = %d, want %d (%v)", n, workers*(each-1)+1, err)
		}
		if n, err := s.VerifyEvents(ctx); err != nil || n != workers*(each-1)+1+1 {
			t.Errorf("VerifyEvents = %d, %v", n, err)
		}
	})
}
