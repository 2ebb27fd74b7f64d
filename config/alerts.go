package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/mica-pki/mica/alerts"
)

// Alerts configures the alert engine (package alerts, docs/inventory.md).
// With no webhooks nothing is evaluated.
type Alerts struct {
	Webhooks []AlertWebhook `yaml:"webhooks,omitempty"`
	// Interval between evaluations; default 5m.
	Interval Duration `yaml:"interval,omitempty"`
	// RenewalWindow: alert when an issued certificate without a successor
	// has less than min(renewal_window, a third of its lifetime) left;
	// default 30d.
	RenewalWindow Duration `yaml:"renewal_window,omitempty"`
	// ExpiryWindow: alert when less than min(expiry_window, a tenth of its
	// lifetime) is left; default 7d.
	ExpiryWindow Duration `yaml:"expiry_window,omitempty"`
	// RepeatAfter: the same certificate, source or finding is sent again
	// only after this; default 24h.
	RepeatAfter Duration `yaml:"repeat_after,omitempty"`
	// DeniedBurst denied audit events from one source within DeniedWindow
	// raise an auth_failures alert; defaults 10 and 5m.
	DeniedBurst  int      `yaml:"denied_burst,omitempty"`
	DeniedWindow Duration `yaml:"denied_window,omitempty"`

	// Anomaly alerts (docs/alerts.md).
	//
	// EnrollmentHours per profile name ("*": every other profile): an
	// issuance outside them raises enrollment_hours.
	EnrollmentHours map[string]AlertHours `yaml:"enrollment_hours,omitempty"`
	// KnownNetworks per profile ("*": all profiles): CIDRs from which an
	// enrollment is always fine.
	KnownNetworks map[string][]string `yaml:"known_networks,omitempty"`
	// NetworkScope: compare an enrollment's network with the requester's
	// past networks ("requester", default) or the profile's ("profile").
	NetworkScope string `yaml:"network_scope,omitempty"`
	// IPv4Prefix and IPv6Prefix group addresses into networks; 24 and 48.
	IPv4Prefix int `yaml:"ipv4_prefix,omitempty"`
	IPv6Prefix int `yaml:"ipv6_prefix,omitempty"`
	// AnomalyWindow: enrollments this recent are checked; default 1h.
	AnomalyWindow Duration `yaml:"anomaly_window,omitempty"`
	// AnomalyBaseline: the history they are compared with; default 30d.
	AnomalyBaseline Duration `yaml:"anomaly_baseline,omitempty"`
	// KeyHours per key ID: when the key may sign. Without an entry a key
	// inherits the union of the profiles' enrollment_hours when every
	// profile has some.
	KeyHours map[string]AlertHours `yaml:"key_hours,omitempty"`
	// KeyOffHoursAllowance signatures per hour outside the allowed hours
	// are not reported (CRL and OCSP re-signing); default 0.
	KeyOffHoursAllowance int64 `yaml:"key_off_hours_allowance,omitempty"`
	// Key burst: signatures in an hour above max(key_burst_factor × the
	// mean of the key_burst_baseline_hours before, key_burst_floor);
	// defaults 5, 100, 24.
	KeyBurstFactor        float64 `yaml:"key_burst_factor,omitempty"`
	KeyBurstFloor         int64   `yaml:"key_burst_floor,omitempty"`
	KeyBurstBaselineHours int     `yaml:"key_burst_baseline_hours,omitempty"`
	// Key network change: a share (default 0.5) of at least
	// key_network_min_requests (default 5) requests in the last hour from
	// networks not seen in the baseline.
	KeyNetworkShare       float64 `yaml:"key_network_share,omitempty"`
	KeyNetworkMinRequests int     `yaml:"key_network_min_requests,omitempty"`
}

// AlertHours is an allowed window: hours "08-18" (comma-separated ranges,
// end exclusive, may wrap past midnight), days "mon-fri", tz an IANA zone
// (default UTC).
type AlertHours struct {
	Hours string `yaml:"hours,omitempty"`
	Days  string `yaml:"days,omitempty"`
	TZ    string `yaml:"tz,omitempty"`
}

// Anomaly converts the anomaly settings for the alert engine. profiles
// are the configured profile names: enrollment_hours and known_networks
// entries must name one of them (or "*"). Errors name the setting.
func (a Alerts) Anomaly(profiles []string) (alerts.AnomalyConfig, error) {
	known := map[string]bool{"*": true}
	for _, p := range profiles {
		known[p] = true
	}
	out := alerts.AnomalyConfig{
		EnrollmentHours: map[string]alerts.Window{}, KnownNetworks: map[string][]netip.Prefix{}, KeyHours: map[string]alerts.Window{},
		Scope: a.NetworkScope, Networks: alerts.Networks{V4: a.IPv4Prefix, V6: a.IPv6Prefix},
		Window: a.AnomalyWindow.D(), Baseline: a.AnomalyBaseline.D(), Profiles: append([]string(nil), profiles...),
		OffHoursAllowance: a.KeyOffHoursAllowance, BurstFactor: a.KeyBurstFactor, BurstFloor: a.KeyBurstFloor,
		BurstBaselineHours: a.KeyBurstBaselineHours, NetworkShare: a.KeyNetworkShare, NetworkMinRequests: a.KeyNetworkMinRequests,
	}
	sort.Strings(out.Profiles)
	for name, h := range a.EnrollmentHours {
		if !known[name] {
			return out, fmt.Errorf("alerts.enrollment_hours.%s: no such profile", name)
		}
		w, err := alerts.ParseWindow(h.Hours, h.Days, h.TZ)
		if err != nil {
			return out, fmt.Errorf("alerts.enrollment_hours.%s: %w", name, err)
		}
		out.EnrollmentHours[name] = w
	}
	for name, h := range a.KeyHours {
		w, err := alerts.ParseWindow(h.Hours, h.Days, h.TZ)
		if err != nil {
			return out, fmt.Errorf("alerts.key_hours.%s: %w", name, err)
		}
		out.KeyHours[name] = w
	}
	for name, cidrs := range a.KnownNetworks {
		if !known[name] {
			return out, fmt.Errorf("alerts.known_networks.%s: no such profile", name)
		}
		for i, c := range cidrs {
			p, err := netip.ParsePrefix(strings.TrimSpace(c))
			if err != nil {
				return out, fmt.Errorf("alerts.known_networks.%s[%d]: %q is not a CIDR", name, i, c)
			}
			out.KnownNetworks[name] = append(out.KnownNetworks[name], p.Masked())
		}
	}
	return out, nil
}

// AlertWebhook is one receiver: deliveries are signed with HMAC-SHA256
// under the secret read from SecretFile or the variable SecretEnv.
type AlertWebhook struct {
	URL        string `yaml:"url"`
	SecretFile string `yaml:"secret_file,omitempty"`
	SecretEnv  string `yaml:"secret_env,omitempty"`
}

// Secret reads the webhook's HMAC key (surrounding whitespace trimmed).
// The error never contains the secret.
func (w AlertWebhook) Secret(getenv func(string) string) ([]byte, error) {
	var s string
	switch {
	case w.SecretFile != "":
		b, err := os.ReadFile(w.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("alerts: webhook %s: read secret_file: %w", w.URL, err)
		}
		s = string(b)
	case w.SecretEnv != "":
		s = getenv(w.SecretEnv)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("alerts: webhook %s: the secret is empty", w.URL)
	}
	return []byte(s), nil
}

func (a Alerts) validate() []error {
	var errs []error
	for i, w := range a.Webhooks {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("alerts.webhooks[%d].url: want an http(s) URL, got %q", i, w.URL))
		}
		if (w.SecretFile == "") == (w.SecretEnv == "") {
			errs = append(errs, fmt.Errorf("alerts.webhooks[%d]: set exactly one of secret_file or secret_env", i))
		}
	}
	for name, d := range map[string]Duration{"interval": a.Interval, "renewal_window": a.RenewalWindow,
		"expiry_window": a.ExpiryWindow, "repeat_after": a.RepeatAfter, "denied_window": a.DeniedWindow} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("alerts.%s must not be negative", name))
		}
	}
	if a.DeniedBurst < 0 {
		errs = append(errs, fmt.Errorf("alerts.denied_burst must not be negative"))
	}
	return append(errs, a.validateAnomaly()...)
}

// validateAnomaly checks the anomaly settings that do not depend on the
// profiles (those are checked by Anomaly at serve).
func (a Alerts) validateAnomaly() []error {
	var errs []error
	switch a.NetworkScope {
	case "", alerts.ScopeRequester, alerts.ScopeProfile:
	default:
		errs = append(errs, fmt.Errorf("alerts.network_scope: want requester or profile, got %q", a.NetworkScope))
	}
	if a.IPv4Prefix < 0 || a.IPv4Prefix > 32 {
		errs = append(errs, fmt.Errorf("alerts.ipv4_prefix must be 0-32"))
	}
	if a.IPv6Prefix < 0 || a.IPv6Prefix > 128 {
		errs = append(errs, fmt.Errorf("alerts.ipv6_prefix must be 0-128"))
	}
	for name, d := range map[string]Duration{"anomaly_window": a.AnomalyWindow, "anomaly_baseline": a.AnomalyBaseline} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("alerts.%s must not be negative", name))
		}
	}
	if a.KeyOffHoursAllowance < 0 || a.KeyBurstFloor < 0 || a.KeyBurstBaselineHours < 0 || a.KeyNetworkMinRequests < 0 || a.KeyBurstFactor < 0 {
		errs = append(errs, fmt.Errorf("alerts: key_off_hours_allowance, key_burst_* and key_network_min_requests must not be negative"))
	}
	if a.KeyNetworkShare < 0 || a.KeyNetworkShare > 1 {
		errs = append(errs, fmt.Errorf("alerts.key_network_share must be between 0 and 1"))
	}
	for _, sec := range []struct {
		name string
		m    map[string]AlertHours
	}{{"enrollment_hours", a.EnrollmentHours}, {"key_hours", a.KeyHours}} {
		for k, h := range sec.m {
			if _, err := alerts.ParseWindow(h.Hours, h.Days, h.TZ); err != nil {
				errs = append(errs, fmt.Errorf("alerts.%s.%s: %w", sec.name, k, err))
			}
		}
	}
	for name, cidrs := range a.KnownNetworks {
		for i, c := range cidrs {
			if _, err := netip.ParsePrefix(strings.TrimSpace(c)); err != nil {
				errs = append(errs, fmt.Errorf("alerts.known_networks.%s[%d]: %q is not a CIDR", name, i, c))
			}
		}
	}
	return errs
}
