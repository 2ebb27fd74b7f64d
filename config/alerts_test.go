package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
