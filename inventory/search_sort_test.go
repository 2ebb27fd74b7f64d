package inventory_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// seedSortable stores 23 certificates whose every sortable column has
// ties (three not_after values, four common names, two issuers, empty and
// repeated owners …), so paging must fall back on the id tie-breaker.
func seedSortable(t *testing.T, s *inventory.Store, now time.Time) []inventory.Certificate {
	t.Helper()
	ctx := context.Background()
	inventorytest.Issuer(t, s, "ca")
	inventorytest.Issuer(t, s, "cb")
	states := []inventory.State{inventory.StateIssued, inventory.StateRevoked, inventory.StateSuperseded, inventory.StateIssued}
	var certs []inventory.Certificate
	for i := range 23 {
		c := inventory.Certificate{
			IssuerID: []string{"ca", "cb"}[i%2], Serial: inventorytest.RandomSerial(t),
			CommonName: fmt.Sprintf("host-%d.test", i%4), Subject: fmt.Sprintf("CN=host-%d.test", i%4),
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Duration(i%3+1) * 24 * time.Hour),
			KeyType: []string{"EC-P256", "RSA-2048", "Ed25519"}[i%3], Profile: []string{"server", "device"}[i%2],
			Protocol: []string{"acme", "est", "cli"}[i%3], State: states[i%4], DER: []byte{0x30},
		}
		if c.State == inventory.StateRevoked {
			at := now.Add(-time.Minute)
			c.RevokedAt, c.RevocationReason = &at, "keyCompromise"
		}
		if i%7 == 6 {
			c.State, c.DER = inventory.StateRequested, nil
		}
		certs = append(certs, c)
	}
	if err := s.Seed(ctx, certs); err != nil {
		t.Fatalf("Seed = %v", err)
	}
	for i := range certs {
		if i%5 == 4 {
			continue // unlabelled: owner, team and environment stay ""
		}
		l := inventory.Labels{Owner: fmt.Sprintf("owner-%d", i%3), Team: fmt.Sprintf("team-%d", i%2),
			Environment: []string{"prod", "test", "dev"}[i%3]}
		if err := s.SetLabels(ctx, certs[i].IssuerID, certs[i].Serial, l, inventory.Event{Actor: "test"}); err != nil {
			t.Fatalf("SetLabels = %v", err)
		}
		certs[i].Labels = &l
	}
	return certs
}

// sortKey is the value a sort orders by, as a comparable string.
func sortKey(c inventory.Certificate, key string) string {
	l := c.Labels
	if l == nil {
		l = &inventory.Labels{}
	}
	switch key {
	case "", inventory.SortIssued:
		return ""
	case inventory.SortExpiry:
		return c.NotAfter.UTC().Format(time.RFC3339Nano)
	case inventory.SortCN:
		return c.CommonName
	case inventory.SortSerial:
		return c.Serial
	case inventory.SortState:
		return string(c.State)
	case inventory.SortOwner:
		return l.Owner
	case inventory.SortTeam:
		return l.Team
	case inventory.SortEnvironment:
		return l.Environment
	case inventory.SortIssuer:
		return c.IssuerID
	case inventory.SortProfile:
		return c.Profile
	case inventory.SortProtocol:
		return c.Protocol
	case inventory.SortKeyType:
		return c.KeyType
	}
	panic("unknown sort " + key)
}

// Every sort × order pages through every row exactly once, in the order
// (value, id) — with ties on value, and for page sizes that split ties.
func TestSearchSortPaging(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s.SetNow(func() time.Time { return now })
			certs := seedSortable(t, s, now)
			keys := append([]string{""}, inventory.SortKeys...)
			// A broad state filter as well as none: on SQLite it takes the
			// index-order probe of searchIDs.
			broad := []inventory.State{inventory.StateIssued, inventory.StateRevoked, inventory.StateSuperseded}
			for _, states := range [][]inventory.State{nil, broad} {
				var rows []inventory.Certificate
				for _, c := range certs {
					if states == nil || slices.Contains(states, c.State) {
						rows = append(rows, c)
					}
				}
				for _, key := range keys {
					for _, order := range []string{"", inventory.OrderAsc, inventory.OrderDesc} {
						checkSortPaging(t, s, now, rows, states, key, order)
					}
				}
			}
			// Sorting composes with filters: revoked rows by expiry.
			f := inventory.SearchFilter{Sort: inventory.SortExpiry, Order: inventory.OrderDesc, CertFilter: inventory.CertFilter{
				Limit: 1, States: []inventory.State{inventory.StateRevoked}}}
			n := 0
			for more := true; more; n++ {
				page, err := s.Search(context.Background(), f)
				if err != nil || len(page.Certificates) != 1 || page.Certificates[0].State != inventory.StateRevoked {
					t.Fatalf("Search(revoked by expiry) = %+v, %v", page, err)
				}
				f.Cursor, more = page.Next, page.Next != ""
			}
			if want, _ := s.CountSearch(context.Background(), f); n != want || n == 0 {
				t.Errorf("revoked by expiry: %d pages, want %d", n, want)
			}
		})
	}
}

// checkSortPaging pages through the rows of states sorted by key and
// order with several page sizes and compares with the order computed here.
func checkSortPaging(t *testing.T, s *inventory.Store, now time.Time, rows []inventory.Certificate, states []inventory.State, key, order string) {
	t.Helper()
	desc := order == inventory.OrderDesc || (order == "" && (key == "" || key == inventory.SortIssued))
	want := slices.Clone(rows)
	slices.SortFunc(want, func(a, b inventory.Certificate) int {
		c := cmp.Or(cmp.Compare(sortKey(a, key), sortKey(b, key)), cmp.Compare(a.ID, b.ID))
		if desc {
			return -c
		}
		return c
	})
	wantIDs := make([]int64, len(want))
	for i := range want {
		wantIDs[i] = want[i].ID
	}
	for _, limit := range []int{2, 3, 100} {
		f := inventory.SearchFilter{Sort: key, Order: order, CertFilter: inventory.CertFilter{Limit: limit, Now: now, States: states}}
		var got []int64
		for range 50 {
			page, err := s.Search(context.Background(), f)
			if err != nil {
				t.Fatalf("Search(sort %q %q) = %v", key, order, err)
			}
			for _, c := range page.Certificates {
				got = append(got, c.ID)
			}
			if page.Next == "" {
				break
			}
			f.Cursor = page.Next
		}
		if !slices.Equal(got, wantIDs) {
			t.Errorf("Search(states %v, sort %q, order %q, limit %d) ids = %v, want %v", states, key, order, limit, got, wantIDs)
		}
	}
}

// An unknown sort or order, a malformed cursor, or a cursor used with
// another sort or order than the one that made it is ErrInvalid — which
// the web layer answers with 400.
func TestSearchSortErrors(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			seedSortable(t, s, now)
			next := func(f inventory.SearchFilter) string {
				f.Limit = 2
				page, err := s.Search(ctx, f)
				if err != nil || page.Next == "" {
					t.Fatalf("Search(%+v) = %+v, %v; want a next page", f, page, err)
				}
				return page.Next
			}
			byCN := next(inventory.SearchFilter{Sort: inventory.SortCN})
			byCNDesc := next(inventory.SearchFilter{Sort: inventory.SortCN, Order: inventory.OrderDesc})
			newest := next(inventory.SearchFilter{})
			for _, tc := range []struct {
				name string
				f    inventory.SearchFilter
			}{
				{"unknown sort", inventory.SearchFilter{Sort: "name"}},
				{"sort case", inventory.SearchFilter{Sort: "CN"}},
				{"unknown order", inventory.SearchFilter{Sort: inventory.SortCN, Order: "up"}},
				{"order case", inventory.SearchFilter{Order: "DESC"}},
				{"garbage cursor", inventory.SearchFilter{Cursor: "!!"}},
				{"not json", inventory.SearchFilter{Cursor: "eA"}},
				{"cursor of cn asc used desc", inventory.SearchFilter{Sort: inventory.SortCN, Order: inventory.OrderDesc, Cursor: byCN}},
				{"cursor of cn desc used asc", inventory.SearchFilter{Sort: inventory.SortCN, Cursor: byCNDesc}},
				{"cursor of cn used for owner", inventory.SearchFilter{Sort: inventory.SortOwner, Cursor: byCN}},
				{"cursor of newest used for expiry", inventory.SearchFilter{Sort: inventory.SortExpiry, Cursor: newest}},
				{"cursor of newest used for issued asc", inventory.SearchFilter{Sort: inventory.SortIssued, Order: inventory.OrderAsc, Cursor: newest}},
			} {
				if _, err := s.Search(ctx, tc.f); !errors.Is(err, inventory.ErrInvalid) {
					t.Errorf("%s: Search = %v, want ErrInvalid", tc.name, err)
				}
			}
			if _, err := s.CountSearch(ctx, inventory.SearchFilter{Order: "sideways"}); !errors.Is(err, inventory.ErrInvalid) {
				t.Errorf("CountSearch(bad order) = %v, want ErrInvalid", err)
			}
			// A cursor goes on working with the sort that made it.
			if _, err := s.Search(ctx, inventory.SearchFilter{Cursor: newest}); err != nil {
				t.Errorf("Search(newest cursor) = %v", err)
			}
			for _, ok := range [][2]string{{"", ""}, {"issued", "asc"}, {"key_type", "desc"}} {
				if err := inventory.CheckSort(ok[0], ok[1]); err != nil {
					t.Errorf("CheckSort(%q, %q) = %v", ok[0], ok[1], err)
				}
			}
		})
	}
}
