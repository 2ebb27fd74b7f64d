package web_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/web"
)

func TestParseFilterSortAndOrder(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		query       string
		sort, order string
		ok          bool
	}{
		{"", "", "", true},
		{"sort=expiry", inventory.SortExpiry, "", true},
		{"sort=cn&order=desc", inventory.SortCN, inventory.OrderDesc, true},
		{"sort=key_type&order=asc", inventory.SortKeyType, inventory.OrderAsc, true},
		{"order=asc", "", inventory.OrderAsc, true},
		{"sort=issued&order=desc&cursor=abc", inventory.SortIssued, inventory.OrderDesc, true},
		{"sort=name", "", "", false},
		{"sort=CN", "", "", false},
		{"sort=cn&order=up", "", "", false},
		{"sort=cn&orderx=asc", "", "", false},
	} {
		v, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		f, err := web.ParseFilter(v, now)
		if (err == nil) != tc.ok {
			t.Errorf("ParseFilter(%q) error = %v, want ok=%v", tc.query, err, tc.ok)
			continue
		}
		if tc.ok && (f.Sort != tc.sort || f.Order != tc.order) {
			t.Errorf("ParseFilter(%q) = sort %q order %q, want %q %q", tc.query, f.Sort, f.Order, tc.sort, tc.order)
		}
	}
	for _, key := range inventory.SortKeys {
		if _, err := web.ParseFilter(url.Values{"sort": {key}, "order": {"desc"}}, now); err != nil {
			t.Errorf("ParseFilter(sort=%s) = %v", key, err)
		}
	}
}
