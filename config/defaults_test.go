package config

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/enroll"
)

// TestServeDefaultsAreSafe: what `mica init` writes and `mica serve`
// loads validates ACME challenges against public addresses only and has
// every rate limit on.
func TestServeDefaultsAreSafe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := Default(dir).Write(Path(dir)); err != nil {
		t.Fatal(err)
	}
	c, err := Load(Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	l := c.ACME.EffectiveLimits()
	for name, v := range map[string]int{
		"orders_per_account_per_hour":                      l.OrdersPerAccountPerHour,
		"orders_per_ip_per_hour":                           l.OrdersPerIPPerHour,
		"accounts_per_ip_per_hour":                         l.AccountsPerIPPerHour,
		"failed_validations_per_account_per_name_per_hour": l.FailedValidationsPerAccountPerNamePerHour,
	} {
		if v <= 0 {
			t.Errorf("default acme.limits.%s = %d, want a limit", name, v)
		}
	}
	c.EST.Labels = map[string]enroll.Label{"d": {Profile: "device", Tokens: true}}
	if got := EffectiveEST(c.EST); got.RateLimit <= 0 || got.CredentialRateLimit <= 0 {
		t.Errorf("default est.rate_limit, credential_rate_limit = %d, %d; want limits", got.RateLimit, got.CredentialRateLimit)
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", false}, {"127.9.9.9", false}, {"::1", false}, {"::ffff:127.0.0.1", false},
		{"0.0.0.0", false}, {"::", false}, {"0.1.2.3", false},
		{"10.0.0.5", false}, {"172.16.0.1", false}, {"172.31.255.255", false}, {"192.168.1.1", false},
		{"::ffff:10.0.0.5", false}, {"::ffff:192.168.0.1", false},
		{"169.254.169.254", false}, {"fe80::1", false}, {"fe80::1%eth0", false},
		{"100.64.0.1", false}, {"100.127.255.254", false},
		{"fc00::1", false}, {"fd00::2", false},
		{"224.0.0.1", false}, {"255.255.255.255", false}, {"ff02::1", false},
		{"64:ff9b::a00:5", false}, // NAT64 of 10.0.0.5
		{"8.8.8.8", true}, {"172.32.0.1", true}, {"100.128.0.1", true}, {"2001:4860:4860::8888", true},
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
	} {
		got, err := c.ACME.Validation.NetworkAllowed(netip.MustParseAddr(tc.addr))
		if err != nil || got != tc.want {
			t.Errorf("serve default: validation may connect to %s = %v, %v; want %v", tc.addr, got, err, tc.want)
		}
	}
}

// TestACMEConfigOverrides: mica.yaml opens a part of a non-public network
// without opening the rest, turns a limit off with a negative number, and
// rejects a network that is not a CIDR at load.
func TestACMEConfigOverrides(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := Parse([]byte(`acme:
  validation:
    allow_networks: [10.20.0.0/16, 0.0.0.0/0, "::/0"]
    deny_networks: [10.20.9.0/24]
  limits:
    accounts_per_ip_per_hour: -1
    orders_per_account_per_hour: 7
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.20.1.1", true},        // allow-listed part of 10/8
		{"10.20.9.9", false},       // deny_networks wins
		{"10.21.0.1", false},       // the rest of 10/8 stays shut
		{"127.0.0.1", false},       // 0.0.0.0/0 does not open loopback
		{"169.254.169.254", false}, // nor cloud metadata
		{"8.8.8.8", true},
	} {
		got, err := c.ACME.Validation.NetworkAllowed(netip.MustParseAddr(tc.addr))
		if err != nil || got != tc.want {
			t.Errorf("validation may connect to %s = %v, %v; want %v", tc.addr, got, err, tc.want)
		}
	}
	only := acme.ValidationOptions{AllowNetworks: []string{"10.20.0.0/16"}}
	if ok, _ := only.NetworkAllowed(netip.MustParseAddr("8.8.8.8")); ok {
		t.Error("allow_networks without 0.0.0.0/0 still allows public addresses; want only the listed networks")
	}
	l := c.ACME.EffectiveLimits()
	def := DefaultACMELimits()
	if l.AccountsPerIPPerHour != 0 || l.OrdersPerAccountPerHour != 7 || l.OrdersPerIPPerHour != def.OrdersPerIPPerHour {
		t.Errorf("EffectiveLimits = %+v, want accounts off, orders/account 7, orders/ip %d", l, def.OrdersPerIPPerHour)
	}
	shown, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"accounts_per_ip_per_hour: -1", "orders_per_ip_per_hour: 1000", "failed_validations_per_account_per_name_per_hour: 5"} {
		if !strings.Contains(string(shown), want) {
			t.Errorf("config show lacks %q:\n%s", want, shown)
		}
	}
	if _, err := Parse([]byte("acme:\n  validation:\n    allow_networks: [10.0.0.0/33]\n"), dir); err == nil || !strings.Contains(err.Error(), "acme.validation") {
		t.Errorf("bad CIDR = %v, want an acme.validation error at load", err)
	}
	// A negative EST rate_limit is "off", not a load error.
	os.WriteFile(Path(dir), []byte("est:\n  rate_limit: -1\n  labels:\n    d: {profile: device, tokens: true}\n"), 0o600)
	e, err := Load(Path(dir))
	if err != nil {
		t.Fatalf("est.rate_limit -1: %v", err)
	}
	if got := EffectiveEST(e.EST).RateLimit; got != 0 {
		t.Errorf("EffectiveEST(rate_limit -1).RateLimit = %d, want 0 (off)", got)
	}
}

// TestDevAllowNetworks: `mica dev`'s allow-list reaches loopback and
// every other network a developer's clients live in.
func TestDevAllowNetworks(t *testing.T) {
	t.Parallel()
	o := acme.ValidationOptions{AllowNetworks: DevAllowNetworks()}
	for _, a := range []string{"127.0.0.1", "::1", "10.0.0.5", "172.17.0.2", "169.254.1.1", "fd00::2", "8.8.8.8", "2001:db8::1"} {
		if ok, err := o.NetworkAllowed(netip.MustParseAddr(a)); err != nil || !ok {
			t.Errorf("mica dev: validation may connect to %s = %v, %v; want true", a, ok, err)
		}
	}
}
