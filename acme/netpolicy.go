package acme

import (
	"fmt"
	"net/netip"
)

// nonPublicNetworks are the networks validation refuses to connect to
// unless allow_networks lists them (or a part of them). They are where a
// requester could point a name to make the CA probe something no client
// should reach through it: the CA host itself (loopback, 0.0.0.0/8 and ::
// reach local listeners on Linux), cloud metadata (169.254.169.254),
// private and carrier-grade NAT ranges (databases, HSMs, management
// networks), and addresses that are not unicast at all.
var nonPublicNetworks = []string{
	"0.0.0.0/8",      // "this network"; 0.0.0.0 reaches local listeners
	"10.0.0.0/8",     // RFC 1918
	"100.64.0.0/10",  // carrier-grade NAT (RFC 6598), Tailscale
	"127.0.0.0/8",    // loopback
	"169.254.0.0/16", // link-local, cloud metadata
	"172.16.0.0/12",  // RFC 1918
	"192.168.0.0/16", // RFC 1918
	"224.0.0.0/4",    // multicast
	"240.0.0.0/4",    // reserved, and 255.255.255.255 broadcast
	"::/128",         // unspecified
	"::1/128",        // loopback
	"64:ff9b:1::/48", // local-use NAT64 (RFC 8215)
	"fc00::/7",       // unique local
	"fe80::/10",      // link-local
	"ff00::/8",       // multicast
}

// NonPublicNetworks returns the networks validation refuses unless
// ValidationOptions.AllowNetworks lists them, as CIDR strings.
func NonPublicNetworks() []string { return append([]string(nil), nonPublicNetworks...) }

// nat64 is the well-known NAT64 prefix (RFC 6052): an address in it
// reaches the IPv4 address in its last 32 bits, which decides.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// networkPolicy decides which addresses validation may connect to.
type networkPolicy struct {
	allow, deny, builtin []netip.Prefix
}

func newNetworkPolicy(allow, deny []string) (networkPolicy, error) {
	var p networkPolicy
	for _, list := range []struct {
		in  []string
		out *[]netip.Prefix
	}{{allow, &p.allow}, {deny, &p.deny}, {nonPublicNetworks, &p.builtin}} {
		for _, c := range list.in {
			pre, err := netip.ParsePrefix(c)
			if err != nil {
				return networkPolicy{}, fmt.Errorf("acme: network %q is not a CIDR prefix", c)
			}
			*list.out = append(*list.out, pre.Masked())
		}
	}
	return p, nil
}

// allows applies the policy to one address:
//
//  1. an address in deny_networks is refused;
//  2. an address in a non-public network is refused unless an
//     allow_networks prefix at least as long contains it (so 0.0.0.0/0
//     does not open loopback, but 10.20.0.0/16 opens that part of 10/8);
//  3. otherwise, with allow_networks empty every address is allowed, and
//     with it set only the addresses it contains.
//
// IPv4-mapped IPv6 addresses are judged as the IPv4 address they map,
// NAT64 addresses as the IPv4 address they embed, and zones are ignored.
func (p networkPolicy) allows(ip netip.Addr) bool {
	ip = ip.WithZone("").Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	if !ip.IsValid() {
		return false
	}
	for _, d := range p.deny {
		if d.Contains(ip) {
			return false
		}
	}
	best := -1 // length of the longest allow prefix containing ip
	for _, a := range p.allow {
		if a.Contains(ip) && a.Bits() > best {
			best = a.Bits()
		}
	}
	for _, n := range p.builtin {
		if n.Contains(ip) && n.Bits() > best {
			return false
		}
	}
	return best >= 0 || len(p.allow) == 0
}

// NetworkAllowed reports whether validation under o may connect to ip,
// with the same rules the validator applies at connect time. It fails
// only when a configured network is not a CIDR prefix.
func (o ValidationOptions) NetworkAllowed(ip netip.Addr) (bool, error) {
	p, err := newNetworkPolicy(o.AllowNetworks, o.DenyNetworks)
	if err != nil {
		return false, err
	}
	return p.allows(ip), nil
}
