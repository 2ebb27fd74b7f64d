package alerts

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// keyAnomalies reads the hourly signature buckets (table key_usage_hourly,
// fed by ca.MeteredKeys on every replica) and the issuance events, and
// reports per key:
//
//   - key_burst: the last full hour or the current partial hour above
//     max(BurstFactor × mean of the BurstBaselineHours hours before the
//     last full hour, BurstFloor); hours without a bucket count as 0;
//   - key_off_hours: an hour bucket whose first and last signature both
//     fall outside the key's allowed hours, with more than
//     OffHoursAllowance signatures;
//   - key_networks: of the requests for certificates of the key's issuer
//     in the last hour (at least NetworkMinRequests), a share of at least
//     NetworkShare from networks not seen for that issuer in Baseline.
func (e *Engine) keyAnomalies(ctx context.Context, now time.Time) (burst, offHours, networks []Item, err error) {
	a := &e.cfg.Anomaly
	cur := inventory.HourOf(now)
	lastFull := cur.Add(-time.Hour)
	baseFrom := lastFull.Add(-time.Duration(a.BurstBaselineHours) * time.Hour)
	buckets, err := e.store.KeyUsageHours(ctx, baseFrom)
	if err != nil {
		return nil, nil, nil, err
	}
	keys, err := e.store.Keys(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	byID := make(map[string]inventory.Key, len(keys))
	for _, k := range keys {
		byID[k.ID] = k
	}
	perKey := map[string][]inventory.KeyHour{}
	var ids []string
	for _, b := range buckets {
		if _, ok := perKey[b.KeyID]; !ok {
			ids = append(ids, b.KeyID)
		}
		perKey[b.KeyID] = append(perKey[b.KeyID], b)
	}
	sort.Strings(ids)
	for _, id := range ids {
		var baseSum int64
		recent := map[time.Time]inventory.KeyHour{}
		for _, b := range perKey[id] {
			switch {
			case b.Hour.Before(lastFull):
				baseSum += b.Signatures
			case !b.Hour.After(cur):
				recent[b.Hour] = b
			}
		}
		mean := float64(baseSum) / float64(a.BurstBaselineHours)
		threshold := max(a.BurstFactor*mean, float64(a.BurstFloor))
		win, hasWin := e.keyWindow(id)
		for _, h := range []time.Time{lastFull, cur} {
			b, ok := recent[h]
			if !ok {
				continue
			}
			which := "the hour"
			if h.Equal(cur) {
				which = "the current (partial) hour"
			}
			if float64(b.Signatures) > threshold {
				burst = append(burst, Item{Subject: "key:" + id + "@" + h.Format(time.RFC3339), KeyID: id, IssuerID: byID[id].IssuerID,
					Detail: fmt.Sprintf("key %s made %d signatures in %s from %s UTC; baseline mean %.1f/hour over the %d hours before, threshold %.0f (max(%.1f × mean, %d))",
						id, b.Signatures, which, h.Format("2006-01-02 15:04"), mean, a.BurstBaselineHours, threshold, a.BurstFactor, a.BurstFloor)})
			}
			if hasWin && !win.allows(b.First) && !win.allows(b.Last) && b.Signatures > a.OffHoursAllowance {
				loc := win.location()
				offHours = append(offHours, Item{Subject: "key:" + id + "@" + h.Format(time.RFC3339), KeyID: id, IssuerID: byID[id].IssuerID,
					Detail: fmt.Sprintf("key %s made %d signatures between %s and %s, outside its allowed hours %s (allowance %d per hour)",
						id, b.Signatures, b.First.In(loc).Format("2006-01-02 15:04 MST"), b.Last.In(loc).Format("15:04 MST"), win, a.OffHoursAllowance)})
			}
		}
	}
	networks, err = e.keyNetworks(ctx, now, keys)
	return burst, offHours, networks, err
}

// windows is a union of windows: a time is allowed when one allows it.
type windows []Window

func (ws windows) allows(t time.Time) bool {
	for _, w := range ws {
		if w.Allows(t) {
			return true
		}
	}
	return false
}

func (ws windows) location() *time.Location { return ws[0].Location() }

func (ws windows) String() string {
	s := ""
	for i, w := range ws {
		if i > 0 {
			s += " or "
		}
		s += w.String()
	}
	return s
}

// keyWindow returns the hours key id may sign in: KeyHours[id], else the
// union of every profile's enrollment hours when each profile has some
// (one unrestricted profile makes the key unrestricted).
func (e *Engine) keyWindow(id string) (windows, bool) {
	a := &e.cfg.Anomaly
	if w, ok := a.KeyHours[id]; ok {
		return windows{w}, true
	}
	if len(a.Profiles) == 0 {
		return nil, false
	}
	var ws windows
	for _, p := range a.Profiles {
		w, ok := a.hoursFor(p)
		if !ok {
			return nil, false
		}
		ws = append(ws, w)
	}
	return ws, true
}

// keyNetworks compares the networks requesting certificates from each
// active key's issuer in the last hour with those seen in the baseline.
func (e *Engine) keyNetworks(ctx context.Context, now time.Time, keys []inventory.Key) ([]Item, error) {
	a := &e.cfg.Anomaly
	from := now.Add(-time.Hour)
	recent, err := e.store.Enrollments(ctx, from, now.Add(time.Nanosecond), 0)
	if err != nil || len(recent) == 0 {
		return nil, err
	}
	base, err := e.store.EnrollmentSources(ctx, now.Add(-a.Baseline), from)
	if err != nil {
		return nil, err
	}
	seen := map[string]map[netip.Prefix]bool{}
	for _, b := range base {
		if p, ok := a.Networks.Of(b.Source); ok {
			addNet(seen, b.IssuerID, p)
		}
	}
	type tally struct {
		total, unseen int
		nets          map[netip.Prefix]bool
	}
	perIssuer := map[string]*tally{}
	for _, en := range recent {
		p, ok := a.Networks.Of(en.Source)
		if !ok {
			continue
		}
		t := perIssuer[en.IssuerID]
		if t == nil {
			t = &tally{nets: map[netip.Prefix]bool{}}
			perIssuer[en.IssuerID] = t
		}
		t.total++
		if !seen[en.IssuerID][p] {
			t.unseen++
			t.nets[p] = true
		}
	}
	var out []Item
	for _, k := range keys {
		if k.Status != inventory.KeyActive || k.IssuerID == "" {
			continue
		}
		t := perIssuer[k.IssuerID]
		if t == nil || len(seen[k.IssuerID]) == 0 || t.total < a.NetworkMinRequests {
			continue // quiet, or no baseline to compare with yet
		}
		share := float64(t.unseen) / float64(t.total)
		if share < a.NetworkShare {
			continue
		}
		h := inventory.HourOf(now)
		out = append(out, Item{Subject: "key:" + k.ID + "@" + h.Format(time.RFC3339), KeyID: k.ID, IssuerID: k.IssuerID,
			Detail: fmt.Sprintf("key %s (issuer %s): %d of %d requests (%.0f%%) in the last hour came from %d network(s) not seen in the last %s (%s); baseline has %d network(s), threshold %.0f%%",
				k.ID, k.IssuerID, t.unseen, t.total, share*100, len(t.nets), days(a.Baseline), listNets(t.nets, 5), len(seen[k.IssuerID]), a.NetworkShare*100)})
	}
	return out, nil
}
