package alerts

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// Anomaly kinds: enrollments (issuance through any protocol) and key use
// that do not fit what is normal for the profile or key.
const (
	// KindEnrollmentHours: a certificate was issued for a profile outside
	// its configured enrollment hours.
	KindEnrollmentHours = "enrollment_hours"
	// KindEnrollmentNetwork: a requester enrolled from a network never seen
	// for it (or for its profile) in the baseline and not a known network.
	KindEnrollmentNetwork = "enrollment_network"
	// KindKeyBurst: a key made far more signatures in an hour than its
	// baseline.
	KindKeyBurst = "key_burst"
	// KindKeyOffHours: a key signed outside the hours its profiles allow.
	KindKeyOffHours = "key_off_hours"
	// KindKeyNetworks: a large share of a key's requests in the last hour
	// came from networks not seen in the baseline.
	KindKeyNetworks = "key_networks"
)

// Network scopes: what an enrollment's network is compared with.
const (
	ScopeRequester = "requester" // the requester's own past networks (default)
	ScopeProfile   = "profile"   // every network seen for the profile
)

// AnomalyConfig tunes anomaly detection. Zero values take the defaults
// shown; with no hours, networks or key settings the key checks still run
// on their defaults (burst and network change need no configuration).
type AnomalyConfig struct {
	// EnrollmentHours per profile name ("*": every profile without its
	// own entry). Issuance outside is an enrollment_hours alert.
	EnrollmentHours map[string]Window
	// KnownNetworks per profile ("*": every profile): addresses in them
	// never raise enrollment_network.
	KnownNetworks map[string][]netip.Prefix
	Scope         string        // ScopeRequester (default) or ScopeProfile
	Networks      Networks      // /24 and /48 by default
	Window        time.Duration // 1h: enrollments this recent are checked
	Baseline      time.Duration // 30d: the history they are compared with
	// Profiles are the configured profile names. A key's allowed hours
	// are the union of its profiles' EnrollmentHours when every profile
	// has some, unless KeyHours names the key.
	Profiles []string
	KeyHours map[string]Window // per key ID
	// OffHoursAllowance signatures per hour outside the allowed hours are
	// not reported (CRL and OCSP re-signing happen at night too); 0.
	OffHoursAllowance int64
	// Burst: a key's signatures in one hour above max(BurstFactor × the
	// mean of the BurstBaselineHours hours before, BurstFloor); defaults
	// 5, 100, 24.
	BurstFactor        float64
	BurstFloor         int64
	BurstBaselineHours int
	// Network change: NetworkShare (0.5) or more of a key's at least
	// NetworkMinRequests (5) requests in the last hour from networks not
	// seen for its issuer in Baseline.
	NetworkShare       float64
	NetworkMinRequests int
}

func (c *AnomalyConfig) defaults() {
	if c.Scope == "" {
		c.Scope = ScopeRequester
	}
	if c.Networks.V4 <= 0 {
		c.Networks.V4 = 24
	}
	if c.Networks.V6 <= 0 {
		c.Networks.V6 = 48
	}
	if c.Window <= 0 {
		c.Window = time.Hour
	}
	if c.Baseline <= 0 {
		c.Baseline = 30 * 24 * time.Hour
	}
	if c.BurstFactor <= 0 {
		c.BurstFactor = 5
	}
	if c.BurstFloor <= 0 {
		c.BurstFloor = 100
	}
	if c.BurstBaselineHours <= 0 {
		c.BurstBaselineHours = 24
	}
	if c.NetworkShare <= 0 {
		c.NetworkShare = 0.5
	}
	if c.NetworkMinRequests <= 0 {
		c.NetworkMinRequests = 5
	}
}

// hoursFor returns the enrollment window of profile, if any.
func (c *AnomalyConfig) hoursFor(profile string) (Window, bool) {
	if w, ok := c.EnrollmentHours[profile]; ok {
		return w, true
	}
	w, ok := c.EnrollmentHours["*"]
	return w, ok
}

// known reports whether addr is in a known network of profile.
func (c *AnomalyConfig) known(profile string, addr netip.Addr) bool {
	return anyContains(c.KnownNetworks[profile], addr) || anyContains(c.KnownNetworks["*"], addr)
}

// enrollmentAnomalies checks the enrollments of the last Window against
// the profile's hours and the requester's (or profile's) networks.
func (e *Engine) enrollmentAnomalies(ctx context.Context, now time.Time) (hours, networks []Item, err error) {
	a := &e.cfg.Anomaly
	recentFrom := now.Add(-a.Window)
	recent, err := e.store.Enrollments(ctx, recentFrom, now.Add(time.Nanosecond), 0)
	if err != nil || len(recent) == 0 {
		return nil, nil, err
	}
	for _, en := range recent {
		w, ok := a.hoursFor(en.Profile)
		if !ok || w.Allows(en.At) {
			continue
		}
		l := en.At.In(w.Location())
		hours = append(hours, Item{Subject: en.Object, IssuerID: en.IssuerID, Serial: serialOf(en.Object),
			Detail: fmt.Sprintf("issued at %s (%s) for profile %q, outside its enrollment hours %s; requester %q via %s from %q",
				l.Format("2006-01-02 15:04 MST"), l.Weekday().String()[:3], en.Profile, w, en.Requester, orUnknown(en.Protocol), en.Source)})
	}

	base, err := e.store.EnrollmentSources(ctx, now.Add(-a.Baseline), recentFrom)
	if err != nil {
		return nil, nil, err
	}
	byRequester := map[string]map[netip.Prefix]bool{}
	byProfile := map[string]map[netip.Prefix]bool{}
	for _, b := range base {
		p, ok := a.Networks.Of(b.Source)
		if !ok {
			continue
		}
		addNet(byRequester, b.Requester, p)
		addNet(byProfile, b.Profile, p)
	}
	type finding struct {
		en    inventory.Enrollment
		net   netip.Prefix
		n     int
		scope string
		seen  map[netip.Prefix]bool
	}
	found := map[string]*finding{}
	var order []string
	for _, en := range recent {
		addr, ok := sourceAddr(en.Source)
		if !ok {
			continue // no address (CLI issuance): nothing to compare
		}
		if a.known(en.Profile, addr) {
			continue
		}
		net, _ := a.Networks.OfAddr(addr)
		seen, scope := byProfile[en.Profile], "profile "+fmt.Sprintf("%q", en.Profile)
		if a.Scope == ScopeRequester && len(byRequester[en.Requester]) > 0 {
			seen, scope = byRequester[en.Requester], "requester "+fmt.Sprintf("%q", en.Requester)
		}
		if len(seen) == 0 || seen[net] {
			continue // no history yet (still learning), or a usual network
		}
		subject := "net:" + en.Profile + "/" + en.Requester + "/" + net.String()
		if f := found[subject]; f != nil {
			f.n++
			continue
		}
		found[subject] = &finding{en: en, net: net, n: 1, scope: scope, seen: seen}
		order = append(order, subject)
	}
	for _, s := range order {
		f := found[s]
		networks = append(networks, Item{Subject: s, IssuerID: f.en.IssuerID, Serial: serialOf(f.en.Object),
			Detail: fmt.Sprintf("requester %q (profile %q) enrolled %d time(s) via %s from %s in network %s, not seen for the %s in the last %s (baseline networks: %s)",
				f.en.Requester, f.en.Profile, f.n, orUnknown(f.en.Protocol), f.en.Source, f.net, f.scope, days(a.Baseline), listNets(f.seen, 5))})
	}
	return hours, networks, nil
}

func addNet(m map[string]map[netip.Prefix]bool, k string, p netip.Prefix) {
	if m[k] == nil {
		m[k] = map[netip.Prefix]bool{}
	}
	m[k][p] = true
}

// listNets names up to limit networks of set, sorted, with the rest counted.
func listNets(set map[netip.Prefix]bool, limit int) string {
	all := make([]string, 0, len(set))
	for p := range set {
		all = append(all, p.String())
	}
	sort.Strings(all)
	if len(all) > limit {
		return strings.Join(all[:limit], ", ") + fmt.Sprintf(" and %d more", len(all)-limit)
	}
	return strings.Join(all, ", ")
}

// serialOf is the serial of a "cert:{issuer}/{serial}" object, printed
// the one way serials are printed (inventory.FormatSerial).
func serialOf(object string) string {
	i := strings.LastIndexByte(object, '/')
	if !strings.HasPrefix(object, "cert:") || i < 0 || i == len(object)-1 {
		return ""
	}
	return inventory.FormatSerial(object[i+1:])
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown protocol"
	}
	return s
}

// days formats d in days when it is a whole number of them.
func days(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
