package config

import (
	"fmt"
	"net/netip"

	"github.com/mica-pki/mica/acme"
)

// ACME configures the ACME front end; docs/acme.md describes every field.
// An empty section serves the "default" directory (CA profile "server",
// no EAB), validates on the standard ports with the system resolver,
// reaches only public addresses and applies DefaultACMELimits.
type ACME struct {
	// Profiles are the ACME directories, /acme/{name}/directory; empty
	// means acme.DefaultProfiles().
	Profiles map[string]acme.Profile `yaml:"profiles,omitempty"`
	// BaseURL is the https://host[:port] clients reach the server at, when
	// a load balancer stands in front; empty means the request's Host.
	BaseURL    string                 `yaml:"base_url,omitempty"`
	Validation acme.ValidationOptions `yaml:"validation,omitempty"`
	// Limits in mica.yaml: 0 (or absent) means the DefaultACMELimits
	// value, a negative number turns the limit off. EffectiveLimits is
	// what the server applies.
	Limits acme.Limits `yaml:"limits,omitempty"`
	// TermsOfService is the URL of the terms ACME clients agree to,
	// shown as meta.termsOfService in every directory; empty: none.
	TermsOfService string `yaml:"terms_of_service,omitempty"`
}

// DefaultACMELimits are the rate limits `mica serve` (and `mica dev`)
// apply when mica.yaml sets none. They follow Let's Encrypt's in spirit —
// a client in a loop is stopped within the hour, a fleet renewing on
// schedule never notices — scaled for a private CA, where one account
// (a cert-manager, an Ansible controller) often orders for hundreds of
// hosts and many hosts share one NAT address:
//
//   - accounts: 50 new accounts per client address per hour (Let's
//     Encrypt: 10 per 3 hours);
//   - orders: 300 per account and 1000 per client address per hour (Let's
//     Encrypt: 300 per account per 3 hours);
//   - failed validations: 5 per account and name per hour, as Let's
//     Encrypt, so a misconfigured client stops hammering its own server.
func DefaultACMELimits() acme.Limits {
	return acme.Limits{
		OrdersPerAccountPerHour:                   300,
		OrdersPerIPPerHour:                        1000,
		AccountsPerIPPerHour:                      50,
		FailedValidationsPerAccountPerNamePerHour: 5,
	}
}

// EffectiveLimits resolves mica.yaml's limits: 0 takes the default, a
// negative value becomes 0, which the ACME server reads as "off".
func (a ACME) EffectiveLimits() acme.Limits {
	l := a.defaultedLimits()
	for _, v := range limitFields(&l) {
		*v = max(*v, 0)
	}
	return l
}

// defaultedLimits fills the zero limits with their defaults and keeps the
// negative ("off") ones as they are, for `mica config show`.
func (a ACME) defaultedLimits() acme.Limits {
	l, def := a.Limits, DefaultACMELimits()
	d := limitFields(&def)
	for i, v := range limitFields(&l) {
		if *v == 0 {
			*v = *d[i]
		}
	}
	return l
}

func limitFields(l *acme.Limits) []*int {
	return []*int{&l.OrdersPerAccountPerHour, &l.OrdersPerIPPerHour, &l.AccountsPerIPPerHour,
		&l.FailedValidationsPerAccountPerNamePerHour}
}

// DevAllowNetworks is the validation allow-list of `mica dev` when
// mica.yaml sets none: every address, non-public ones included. A
// development CA listens on loopback, so whoever can order from it can
// already reach everything the host can; and its clients are the
// developer's own loopback servers, containers and VMs.
func DevAllowNetworks() []string {
	return append(acme.NonPublicNetworks(), "0.0.0.0/0", "::/0")
}

func (c *Config) validateACME() []error {
	// NetworkAllowed parses every configured network, so a typo is an
	// error at load, not at the first validation.
	if _, err := c.ACME.Validation.NetworkAllowed(netip.IPv4Unspecified()); err != nil {
		return []error{fmt.Errorf("acme.validation: %v", err)}
	}
	return nil
}
