package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAlertsConfig(t *testing.T) {
	dir := t.TempDir()
	sf := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(sf, []byte("  k3y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte("alerts:\n  renewal_window: 30d\n  webhooks:\n    - url: https://hooks.test/x\n      secret_file: "+sf+"\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil && strings.Contains(err.Error(), "alerts") {
		t.Errorf("valid alerts section refused: %v", err)
	}
	if c.Alerts.RenewalWindow.D() != 30*Day || len(c.Alerts.Webhooks) != 1 {
		t.Errorf("alerts = %+v", c.Alerts)
	}
	if s, err := c.Alerts.Webhooks[0].Secret(os.Getenv); err != nil || string(s) != "k3y" {
		t.Errorf("secret = %q, %v", s, err)
	}
	env := AlertWebhook{URL: "https://h.test", SecretEnv: "HOOK"}
	if s, err := env.Secret(func(string) string { return "from-env" }); err != nil || string(s) != "from-env" {
		t.Errorf("env secret = %q, %v", s, err)
	}
	if _, err := env.Secret(func(string) string { return "" }); err == nil {
		t.Error("an empty secret was accepted")
	}

	bad := Alerts{Webhooks: []AlertWebhook{{URL: "ftp://x"}, {URL: "https://y.test", SecretFile: "a", SecretEnv: "B"}}, DeniedBurst: -1}
	msg := ""
	for _, e := range bad.validate() {
		msg += e.Error() + "\n"
	}
	for _, want := range []string{"alerts.webhooks[0].url", "alerts.webhooks[0]: set exactly one", "alerts.webhooks[1]: set exactly one", "denied_burst"} {
		if !strings.Contains(msg, want) {
			t.Errorf("validation lacks %q:\n%s", want, msg)
		}
	}
}

// TestAlertsAnomalyConfig: the anomaly keys parse from YAML, convert for
// the engine, and bad values are refused by Validate with the key named.
func TestAlertsAnomalyConfig(t *testing.T) {
	yml := `alerts:
  webhooks:
    - url: https://hooks.test/x
      secret_env: HOOK
  enrollment_hours:
    device: {hours: "08-18", days: "mon-fri", tz: "Europe/Berlin"}
  known_networks:
    device: ["10.20.0.0/16", "2001:db8::/32"]
  network_scope: profile
  ipv4_prefix: 16
  anomaly_baseline: 14d
  key_hours:
    issuing-1: {hours: "06-22"}
  key_off_hours_allowance: 30
  key_burst_factor: 3.5
  key_burst_floor: 50
  key_network_share: 0.8
`
	c, err := Parse([]byte(yml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if errs := c.Alerts.validate(); len(errs) != 0 {
		t.Fatalf("valid anomaly settings refused: %v", errs)
	}
	a, err := c.Alerts.Anomaly([]string{"device", "server"})
	if err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if w := a.EnrollmentHours["device"]; !w.Allows(time.Date(2030, 1, 8, 9, 0, 0, 0, berlin)) || w.Allows(time.Date(2030, 1, 8, 19, 0, 0, 0, berlin)) {
		t.Errorf("enrollment_hours.device = %v", w)
	}
	if len(a.KnownNetworks["device"]) != 2 || a.Scope != "profile" || a.Networks.V4 != 16 || a.Baseline != 14*Day ||
		a.OffHoursAllowance != 30 || a.BurstFactor != 3.5 || a.BurstFloor != 50 || a.NetworkShare != 0.8 || a.KeyHours["issuing-1"].IsZero() {
		t.Errorf("Anomaly() = %+v", a)
	}

	bad := Alerts{NetworkScope: "everyone", IPv4Prefix: 33, KeyNetworkShare: 1.5, KeyBurstFloor: -1,
		EnrollmentHours: map[string]AlertHours{"device": {Hours: "25-26"}},
		KnownNetworks:   map[string][]string{"device": {"not-a-cidr"}}}
	msg := ""
	for _, e := range bad.validate() {
		msg += e.Error() + "\n"
	}
	for _, want := range []string{"alerts.network_scope", "alerts.ipv4_prefix", "alerts.key_network_share", "key_burst_",
		"alerts.enrollment_hours.device", "alerts.known_networks.device[0]"} {
		if !strings.Contains(msg, want) {
			t.Errorf("validation lacks %q:\n%s", want, msg)
		}
	}
}
