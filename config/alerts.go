package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
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
	return errs
}
