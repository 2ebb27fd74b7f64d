package inventory_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// fixture is a small, hand-made inventory every filter case can reason
// about. Names are the certificates' common names.
type fixture struct {
	byName map[string]*inventory.Certificate
	now    time.Time
}

func seedFixture(t *testing.T, s *inventory.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	inventorytest.Issuer(t, s, "ca1")
	inventorytest.Issuer(t, s, "ca2")
	now := t0
	fx := &fixture{byName: map[string]*inventory.Certificate{}, now: now}
	pk := func(b byte) string { sum := sha256.Sum256([]byte{b}); return hex.EncodeToString(sum[:]) }
	der := []byte{0x30, 0x03, 0x02, 0x01, 0x01}
	fp := func(name string) string { sum := sha256.Sum256([]byte(name)); return hex.EncodeToString(sum[:]) }
	revokedAt := now.Add(-time.Hour)
	certs := []inventory.Certificate{
		{CommonName: "web.example.test", IssuerID: "ca1", State: inventory.StateIssued, NotAfter: now.Add(90 * 24 * time.Hour),
			Profile: "server", Protocol: "acme", Requester: "acct-1", PublicKeySHA256: pk(1), SANs: []string{"dns:web.example.test", "dns:www.Example.TEST"}},
		{CommonName: "soon.example.test", IssuerID: "ca1", State: inventory.StateIssued, NotAfter: now.Add(5 * 24 * time.Hour),
			Profile: "server", Protocol: "acme", Requester: "acct-1", PublicKeySHA256: pk(2), SANs: []string{"dns:soon.example.test"}},
		{CommonName: "old.example.test", IssuerID: "ca1", State: inventory.StateIssued, NotAfter: now.Add(-24 * time.Hour),
			Profile: "server", Protocol: "cli", Requester: "alice", PublicKeySHA256: pk(3)},
		{CommonName: "edge.example.test", IssuerID: "ca2", State: inventory.StateIssued, NotAfter: now, // expires exactly now: expired
			Profile: "server", Protocol: "est", Requester: "dev-7", PublicKeySHA256: pk(4)},
		{CommonName: "device-7", IssuerID: "ca2", State: inventory.StateRevoked, NotAfter: now.Add(300 * 24 * time.Hour),
			Profile: "device", Protocol: "est", Requester: "dev-7", PublicKeySHA256: pk(1), RevocationReason: "keyCompromise", RevokedAt: &revokedAt,
			SANs: []string{"uri:spiffe://example.test/device/7", "ip:10.1.2.3"}},
		{CommonName: "renewed.example.test", IssuerID: "ca2", State: inventory.StateSuperseded, NotAfter: now.Add(10 * 24 * time.Hour),
			Profile: "server", Protocol: "acme", Requester: "acct-2", PublicKeySHA256: pk(5)},
		{CommonName: "pending.example.test", IssuerID: "ca1", State: inventory.StateRequested, NotAfter: now.Add(30 * 24 * time.Hour),
			Profile: "server", Protocol: "api", Requester: "svc", PublicKeySHA256: pk(6)},
		{CommonName: "broken_100%.example.test", IssuerID: "ca1", State: inventory.StateFailed, NotAfter: now.Add(30 * 24 * time.Hour),
			Profile: "server", Protocol: "api", Requester: "svc", SANs: []string{"email:ops@example.test"}},
	}
	serials := []string{"abc0001", "abc0002", "123456", "fe01", "dead0007", "c0ffee", "aaaa", "bbbb"}
	for i := range certs {
		c := &certs[i]
		c.Serial = serials[i]
		c.Subject = "CN=" + c.CommonName + ",O=Example"
		c.NotBefore = c.NotAfter.Add(-365 * 24 * time.Hour)
		if c.State != inventory.StateRequested && c.State != inventory.StateFailed {
			c.DER, c.FingerprintSHA256 = der, fp(c.CommonName)
		}
	}
	if err := s.Seed(ctx, certs); err != nil {
		t.Fatal(err)
	}
	for i := range certs {
		c := certs[i]
		fx.byName[c.CommonName] = &c
	}
	return fx
}

func names(cs []inventory.Certificate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.CommonName
	}
	sort.Strings(out)
	return out
}

func TestFindCertificatesFilters(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		fx := seedFixture(t, s)
		st := func(ss ...inventory.State) []inventory.State { return ss }
		fpWeb := fx.byName["web.example.test"].FingerprintSHA256
		tests := []struct {
			name string
			f    inventory.CertFilter
			want []string
		}{
			{"all", inventory.CertFilter{}, []string{"broken_100%.example.test", "device-7", "edge.example.test", "old.example.test", "pending.example.test", "renewed.example.test", "soon.example.test", "web.example.test"}},
			{"issuer", inventory.CertFilter{IssuerID: "ca2"}, []string{"device-7", "edge.example.test", "renewed.example.test"}},
			{"serial typed", inventory.CertFilter{Serial: "00:0A:BC:00:01"}, []string{"web.example.test"}},
			{"profile", inventory.CertFilter{Profile: "device"}, []string{"device-7"}},
			{"protocol", inventory.CertFilter{Protocol: "est"}, []string{"device-7", "edge.example.test"}},
			{"requester", inventory.CertFilter{Requester: "acct-1"}, []string{"soon.example.test", "web.example.test"}},
			{"pubkey", inventory.CertFilter{PublicKeySHA256: strings.ToUpper(fx.byName["web.example.test"].PublicKeySHA256)}, []string{"device-7", "web.example.test"}},
			{"issued means valid", inventory.CertFilter{States: st(inventory.StateIssued), Now: fx.now}, []string{"soon.example.test", "web.example.test"}},
			{"expired derived", inventory.CertFilter{States: st(inventory.StateExpired), Now: fx.now}, []string{"edge.example.test", "old.example.test"}},
			{"issued+expired", inventory.CertFilter{States: st(inventory.StateIssued, inventory.StateExpired), Now: fx.now}, []string{"edge.example.test", "old.example.test", "soon.example.test", "web.example.test"}},
			{"expired later", inventory.CertFilter{States: st(inventory.StateExpired), Now: fx.now.Add(6 * 24 * time.Hour)}, []string{"edge.example.test", "old.example.test", "soon.example.test"}},
			{"expired earlier", inventory.CertFilter{States: st(inventory.StateExpired), Now: fx.now.Add(-48 * time.Hour)}, nil},
			{"revoked", inventory.CertFilter{States: st(inventory.StateRevoked)}, []string{"device-7"}},
			{"superseded", inventory.CertFilter{States: st(inventory.StateSuperseded)}, []string{"renewed.example.test"}},
			{"requested+failed", inventory.CertFilter{States: st(inventory.StateRequested, inventory.StateFailed)}, []string{"broken_100%.example.test", "pending.example.test"}},
			{"revoked or valid", inventory.CertFilter{States: st(inventory.StateRevoked, inventory.StateIssued), Now: fx.now}, []string{"device-7", "soon.example.test", "web.example.test"}},
			{"expiring soon", inventory.CertFilter{States: st(inventory.StateIssued), Now: fx.now, ExpiresBefore: fx.now.Add(30 * 24 * time.Hour)}, []string{"soon.example.test"}},
			{"expires window", inventory.CertFilter{ExpiresAfter: fx.now, ExpiresBefore: fx.now.Add(11 * 24 * time.Hour)}, []string{"edge.example.test", "renewed.example.test", "soon.example.test"}},
			{"text CN case", inventory.CertFilter{Text: "WEB.EXAMPLE"}, []string{"web.example.test"}},
			{"text subject", inventory.CertFilter{Text: "o=example"}, []string{"broken_100%.example.test", "device-7", "edge.example.test", "old.example.test", "pending.example.test", "renewed.example.test", "soon.example.test", "web.example.test"}},
			{"text SAN dns", inventory.CertFilter{Text: "www.example"}, []string{"web.example.test"}},
			{"text SAN uri", inventory.CertFilter{Text: "spiffe://example.test/device"}, []string{"device-7"}},
			{"text SAN ip", inventory.CertFilter{Text: "10.1.2"}, []string{"device-7"}},
			{"text SAN email", inventory.CertFilter{Text: "OPS@"}, []string{"broken_100%.example.test"}},
			{"text serial colons", inventory.CertFilter{Text: "DE:AD:00"}, []string{"device-7"}},
			{"text serial leading zero", inventory.CertFilter{Text: "00:0a:bc:00:01"}, []string{"web.example.test"}},
			{"text serial fragment", inventory.CertFilter{Text: "c0ff"}, []string{"renewed.example.test"}},
			{"text fingerprint colons", inventory.CertFilter{Text: strings.ToUpper(fpWeb[:2] + ":" + fpWeb[2:4] + ":" + fpWeb[4:12])}, []string{"web.example.test"}},
			{"text LIKE wildcards literal", inventory.CertFilter{Text: "100%"}, []string{"broken_100%.example.test"}},
			{"text underscore literal", inventory.CertFilter{Text: "n_1"}, []string{"broken_100%.example.test"}},
			{"text percent alone", inventory.CertFilter{Text: "%"}, []string{"broken_100%.example.test"}},
			{"text no match", inventory.CertFilter{Text: "nothing-like-this"}, nil},
			{"combined", inventory.CertFilter{IssuerID: "ca1", Protocol: "acme", States: st(inventory.StateIssued), Now: fx.now, Text: "soon"}, []string{"soon.example.test"}},
		}
		for _, tt := range tests {
			got, err := s.FindCertificates(ctx, tt.f)
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
				continue
			}
			want := append([]string(nil), tt.want...)
			sort.Strings(want)
			if !slices.Equal(names(got), want) {
				t.Errorf("%s: got %q, want %q", tt.name, names(got), want)
			}
			for i := 1; i < len(got); i++ {
				if got[i-1].ID <= got[i].ID {
					t.Errorf("%s: not ordered by id desc", tt.name)
				}
			}
			n, err := s.Count(ctx, tt.f)
			if err != nil || n != len(want) {
				t.Errorf("%s: Count = %d, %v; want %d", tt.name, n, err, len(want))
			}
		}
		// SANs and DER are loaded on list results.
		got, _ := s.FindCertificates(ctx, inventory.CertFilter{Text: "web.example"})
		if len(got) != 1 || !slices.Equal(got[0].SANs, []string{"dns:web.example.test", "dns:www.Example.TEST"}) || len(got[0].DER) == 0 {
			t.Errorf("SANs/DER not loaded: %+v", got)
		}
		// EffectiveState agrees with the filter's derivation.
		for _, c := range got {
			if c.EffectiveState(fx.now) != inventory.StateIssued {
				t.Errorf("EffectiveState = %s", c.EffectiveState(fx.now))
			}
		}
		for _, bad := range []inventory.CertFilter{
			{States: []inventory.State{"bogus"}},
			{Serial: "xyz"},
			{PublicKeySHA256: "abc"},
		} {
			_, err := s.FindCertificates(ctx, bad)
			wantErr(t, err, inventory.ErrInvalid)
			_, err = s.Count(ctx, bad)
			wantErr(t, err, inventory.ErrInvalid)
		}
	})
}

// Keyset pagination must visit every row exactly once, newest first, even
// when rows are added between pages.
func TestFindCertificatesKeysetPagination(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "ca")
		const total = 257
		mk := func(i int) inventory.Certificate {
			c := newCert(t, "ca")
			c.Serial = fmt.Sprintf("%x", 0x100000+i)
			c.CommonName = fmt.Sprintf("host-%03d.example.test", i)
			if i >= total {
				c.CommonName = fmt.Sprintf("late-%d.example.test", i) // matches no filter below
			}
			c.State = inventory.StateIssued
			c.DER = []byte{0x30, 0x00}
			if i%3 == 0 && i < total {
				c.Profile = "device"
			}
			return c
		}
		certs := make([]inventory.Certificate, total)
		for i := range certs {
			certs[i] = mk(i)
		}
		if err := s.Seed(ctx, certs); err != nil {
			t.Fatal(err)
		}
		lateN := 0
		for _, tt := range []struct {
			f     inventory.CertFilter
			limit int
			want  int
		}{
			{inventory.CertFilter{}, 40, total},
			{inventory.CertFilter{}, 1, total},
			{inventory.CertFilter{}, 0, total}, // default page of 100
			{inventory.CertFilter{Profile: "device"}, 7, (total + 2) / 3},
			{inventory.CertFilter{Text: "host-1"}, 9, 100}, // host-100 … host-199
		} {
			seen := map[int64]bool{}
			f := tt.f
			f.Limit = tt.limit
			pages := 0
			lateN++
			last := int64(0)
			for {
				page, err := s.FindCertificates(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) == 0 {
					break
				}
				pages++
				wantLen := tt.limit
				if wantLen == 0 {
					wantLen = 100
				}
				if len(page) > wantLen {
					t.Fatalf("page of %d rows, limit %d", len(page), wantLen)
				}
				for _, c := range page {
					if seen[c.ID] {
						t.Fatalf("id %d returned twice", c.ID)
					}
					if last != 0 && c.ID >= last {
						t.Fatalf("ids not strictly descending: %d after %d", c.ID, last)
					}
					seen[c.ID], last = true, c.ID
				}
				f.Before = page[len(page)-1].ID
				if pages == 2 {
					// A row inserted mid-walk is newer than the cursor: it
					// must neither appear in later pages nor shift them.
					late := mk(10000 + lateN)
					reserve(t, s, late)
				}
			}
			// Late rows of earlier walks exist before this walk starts.
			want := tt.want
			if tt.f.Profile == "" && tt.f.Text == "" {
				want += lateN - 1
			}
			if len(seen) != want {
				t.Errorf("filter %+v limit %d: %d rows, want %d", tt.f, tt.limit, len(seen), want)
			}
		}
		// The cap.
		page, err := s.FindCertificates(ctx, inventory.CertFilter{Limit: 5000})
		if err != nil || len(page) > 1000 {
			t.Fatalf("Limit 5000: %d rows, %v", len(page), err)
		}
	})
}
