package web

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// filterParams are the query parameters ParseFilter understands; the API
// and the UI's bookmarkable table URLs share them.
var filterParams = []string{"q", "state", "issuer", "serial", "profile", "protocol", "requester", "owner", "team",
	"environment", "tag", "key_type", "expiring_days", "weak", "seen_since", "not_seen_since", "sort", "order", "cursor", "limit"}

// ParseFilter turns query parameters into the one inventory search filter:
//
//	q               text: CN, subject, SAN, serial or fingerprint substring
//	state           comma list: issued, expired, revoked, superseded, requested, failed
//	issuer, serial, profile, protocol, requester, owner, team, environment, tag
//	key_type        "RSA-2048", or a family with a trailing dash: "RSA-"
//	expiring_days   still valid and expiring within N days
//	weak            true: RSA < 2048, SHA-1, or expired but still deployed
//	seen_since, not_seen_since   RFC 3339 time, or "Nd" for N days ago
//	sort            "" (newest first), issued, expiry, cn, serial, state, owner, team,
//	                environment, issuer, profile, protocol, key_type
//	order           asc or desc ("" = the column's natural order: issued desc, others asc)
//	cursor, limit   keyset paging (limit 1–1000, default 100)
//
// Unknown parameters are an error, so a typo does not silently widen a
// query.
func ParseFilter(v url.Values, now time.Time) (inventory.SearchFilter, error) {
	var f inventory.SearchFilter
	for k := range v {
		if !contains(filterParams, k) {
			return f, fmt.Errorf("unknown filter parameter %q", k)
		}
	}
	f.Text, f.IssuerID, f.Serial = v.Get("q"), v.Get("issuer"), v.Get("serial")
	f.Profile, f.Protocol, f.Requester = v.Get("profile"), v.Get("protocol"), v.Get("requester")
	f.Owner, f.Team, f.Environment, f.Tag = v.Get("owner"), v.Get("team"), v.Get("environment"), v.Get("tag")
	f.KeyType, f.Sort, f.Order, f.Cursor = v.Get("key_type"), v.Get("sort"), v.Get("order"), v.Get("cursor")
	f.Now = now
	if err := inventory.CheckSort(f.Sort, f.Order); err != nil {
		return f, fmt.Errorf("sort must be one of %s, order asc or desc", strings.Join(inventory.SortKeys, ", "))
	}
	if st := v.Get("state"); st != "" {
		for _, s := range strings.Split(st, ",") {
			f.States = append(f.States, inventory.State(strings.TrimSpace(s)))
		}
	}
	if d := v.Get("expiring_days"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 1 || n > 3650 {
			return f, fmt.Errorf("expiring_days must be a number of days from 1 to 3650")
		}
		f.ExpiringWithin = time.Duration(n) * 24 * time.Hour
	}
	switch v.Get("weak") {
	case "", "false", "0":
	case "true", "1", "on":
		f.Weak = true
	default:
		return f, fmt.Errorf("weak must be true or false")
	}
	var err error
	if f.SeenSince, err = parseSince(v.Get("seen_since"), now); err != nil {
		return f, fmt.Errorf("seen_since: %v", err)
	}
	if f.NotSeenSince, err = parseSince(v.Get("not_seen_since"), now); err != nil {
		return f, fmt.Errorf("not_seen_since: %v", err)
	}
	if l := v.Get("limit"); l != "" {
		if f.Limit, err = strconv.Atoi(l); err != nil || f.Limit < 1 || f.Limit > 1000 {
			return f, fmt.Errorf("limit must be from 1 to 1000")
		}
	}
	return f, nil
}

// parseSince accepts an RFC 3339 time or "Nd" (N days before now).
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 36500 {
			return time.Time{}, fmt.Errorf("want RFC 3339 or Nd")
		}
		return now.Add(-time.Duration(n) * 24 * time.Hour), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 or Nd")
	}
	return t, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
