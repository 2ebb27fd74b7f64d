package alerts

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ErrBadWindow is returned for an hours, days or time zone setting that
// does not parse.
var ErrBadWindow = errors.New("alerts: bad time window")

// Window is a set of allowed local hours on allowed weekdays in one time
// zone: "enrollments for profile device happen 08-18, mon-fri, in
// Europe/Berlin".
type Window struct {
	hours [24]bool
	days  [7]bool // indexed by time.Weekday
	loc   *time.Location
	text  string
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseWindow parses a window. hours is a comma-separated list of "HH-HH"
// ranges (start inclusive, end exclusive, wrapping past midnight when the
// end is not after the start: "22-06") or single hours "HH"; empty means
// all day. days is a comma-separated list of weekdays or ranges ("mon-fri",
// "sat,sun", "fri-mon"); empty means every day. tz is an IANA zone name;
// empty means UTC. Errors wrap ErrBadWindow.
func ParseWindow(hours, days, tz string) (Window, error) {
	w := Window{loc: time.UTC}
	if tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return Window{}, fmt.Errorf("%w: time zone %q: %v", ErrBadWindow, tz, err)
		}
		w.loc = loc
	}
	if strings.TrimSpace(hours) == "" {
		for h := range w.hours {
			w.hours[h] = true
		}
	}
	for part := range strings.SplitSeq(hours, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		from, to, isRange := strings.Cut(part, "-")
		a, err := parseHour(from, 23)
		if err != nil {
			return Window{}, fmt.Errorf("%w: hours %q: %v", ErrBadWindow, hours, err)
		}
		b := (a + 1) % 24
		if isRange {
			if b, err = parseHour(to, 24); err != nil {
				return Window{}, fmt.Errorf("%w: hours %q: %v", ErrBadWindow, hours, err)
			}
		}
		for h := a; ; h = (h + 1) % 24 {
			w.hours[h] = true
			if (h+1)%24 == b%24 {
				break
			}
		}
	}
	if strings.TrimSpace(days) == "" || strings.TrimSpace(days) == "*" {
		for d := range w.days {
			w.days[d] = true
		}
	}
	for part := range strings.SplitSeq(days, ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		if part == "" || part == "*" {
			continue
		}
		from, to, isRange := strings.Cut(part, "-")
		a, ok := weekdays[strings.TrimSpace(from)]
		b := a
		if isRange {
			var okB bool
			b, okB = weekdays[strings.TrimSpace(to)]
			ok = ok && okB
		}
		if !ok {
			return Window{}, fmt.Errorf("%w: days %q: want mon, tue, … or ranges like mon-fri", ErrBadWindow, days)
		}
		for d := a; ; d = (d + 1) % 7 {
			w.days[d] = true
			if d == b {
				break
			}
		}
	}
	w.text = describeWindow(hours, days, w.loc)
	return w, nil
}

func parseHour(s string, maxHour int) (int, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(s, ":00")
	h, err := strconv.Atoi(s)
	if err != nil || h < 0 || h > maxHour {
		return 0, fmt.Errorf("%q is not an hour 0-%d", s, maxHour)
	}
	return h, nil
}

func describeWindow(hours, days string, loc *time.Location) string {
	if hours == "" {
		hours = "all day"
	}
	if days == "" {
		days = "every day"
	}
	return hours + " " + days + " " + loc.String()
}

// IsZero reports whether w was never parsed (no window configured).
func (w Window) IsZero() bool { return w.loc == nil }

// Allows reports whether t falls in the window (in its time zone).
func (w Window) Allows(t time.Time) bool {
	if w.IsZero() {
		return true
	}
	l := t.In(w.loc)
	return w.days[l.Weekday()] && w.hours[l.Hour()]
}

// Location returns the window's time zone.
func (w Window) Location() *time.Location {
	if w.loc == nil {
		return time.UTC
	}
	return w.loc
}

// String describes the window, e.g. "08-18 mon-fri Europe/Berlin".
func (w Window) String() string { return w.text }

// Networks groups addresses into networks: IPv4 by /V4 (default 24), IPv6
// by /V6 (default 48).
type Networks struct {
	V4, V6 int
}

// Of returns the network of addr (an IP, or an IP:port), or false when
// addr is not an address (a CLI issuance has no source).
func (n Networks) Of(addr string) (netip.Prefix, bool) {
	a, ok := sourceAddr(addr)
	if !ok {
		return netip.Prefix{}, false
	}
	return n.OfAddr(a)
}

// sourceAddr parses an event source (an IP, or an IP:port) into an
// unmapped address, or false when it is none (a CLI issuance).
func sourceAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap(), true
}

// OfAddr returns the network of a.
func (n Networks) OfAddr(a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap().WithZone("")
	bits := n.V6
	if a.Is4() {
		bits = n.V4
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}

// anyContains reports whether one of ps contains addr.
func anyContains(ps []netip.Prefix, addr netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
