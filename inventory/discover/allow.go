package discover

import (
	"fmt"
	"net/netip"
	"strings"
)

// AllowList is the set of networks the scanner may connect to. The zero
// value allows nothing.
type AllowList struct {
	prefixes []netip.Prefix
}

// LoopbackOnly is the development default: 127.0.0.0/8 and ::1.
func LoopbackOnly() *AllowList {
	a, _ := ParseAllowList([]string{"127.0.0.0/8", "::1/128"})
	return a
}

// ParseAllowList reads CIDRs or single addresses.
func ParseAllowList(entries []string) (*AllowList, error) {
	a := &AllowList{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !strings.Contains(e, "/") {
			ip, err := netip.ParseAddr(e)
			if err != nil {
				return nil, fmt.Errorf("discover: allow-list entry %q: want an address or CIDR", e)
			}
			e = netip.PrefixFrom(ip, ip.BitLen()).String()
		}
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return nil, fmt.Errorf("discover: allow-list entry %q: %v", e, err)
		}
		a.prefixes = append(a.prefixes, p.Masked())
	}
	return a, nil
}

// Allows reports whether ip may be scanned.
func (a *AllowList) Allows(ip netip.Addr) bool {
	if a == nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// AllowsPrefix reports whether every address of p may be scanned.
func (a *AllowList) AllowsPrefix(p netip.Prefix) bool {
	if a == nil {
		return false
	}
	p = p.Masked()
	for _, q := range a.prefixes {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// String lists the allowed networks.
func (a *AllowList) String() string {
	if a == nil || len(a.prefixes) == 0 {
		return "(nothing)"
	}
	s := make([]string, len(a.prefixes))
	for i, p := range a.prefixes {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
