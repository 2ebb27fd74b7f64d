package acme_test

import (
	"net/netip"
	"testing"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/config"
)

// FuzzNetworkPolicy: under the serve defaults an address is judged the
// same in every spelling the dialer may hand the policy — IPv4, its
// IPv4-mapped IPv6 form, its NAT64 form, with or without an IPv6 zone —
// and `mica dev`'s allow-list allows every address.
func FuzzNetworkPolicy(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "10.0.0.5", "169.254.169.254", "8.8.8.8", "::1", "fe80::1", "fd00::2", "2001:db8::1"} {
		b := netip.MustParseAddr(s).As16()
		f.Add(b[:])
	}
	serve := acme.ValidationOptions{}
	dev := acme.ValidationOptions{AllowNetworks: config.DevAllowNetworks()}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) != 16 {
			return
		}
		ip := netip.AddrFrom16([16]byte(raw))
		got, err := serve.NetworkAllowed(ip)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := dev.NetworkAllowed(ip); !ok {
			t.Errorf("mica dev refuses %s", ip)
		}
		if ip.Is4In6() {
			if v4, _ := serve.NetworkAllowed(ip.Unmap()); v4 != got {
				t.Errorf("%s allowed %v but its IPv4 form %v", ip, got, v4)
			}
			b := ip.Unmap().As4()
			nat := netip.AddrFrom16([16]byte{0, 0x64, 0xff, 0x9b, 10: 0, 11: 0, 12: b[0], 13: b[1], 14: b[2], 15: b[3]})
			if n, _ := serve.NetworkAllowed(nat); n != got {
				t.Errorf("NAT64 %s allowed %v but %s %v", nat, n, ip, got)
			}
			return
		}
		if zoned, _ := serve.NetworkAllowed(ip.WithZone("eth0")); zoned != got {
			t.Errorf("%s allowed %v but with a zone %v", ip, got, zoned)
		}
	})
}
