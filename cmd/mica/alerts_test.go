package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/alerts"
	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/config"
)

// TestServeWebhookAlerts: a real 'mica dev' configured with an alerts
// webhook reports an external certificate found by 'mica discover files'
// as a signed "external" alert, delivered to a receiver on 127.0.0.1.
func TestServeWebhookAlerts(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	secret := "webhook-secret-" + newSecret(t)
	got := make(chan alerts.Alert, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !alerts.Verify([]byte(secret), body, r.Header.Get(alerts.HeaderSignature)) {
			t.Errorf("bad signature on %s", body)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var a alerts.Alert
		if err := json.Unmarshal(body, &a); err != nil {
			t.Errorf("bad alert %s: %v", body, err)
		}
		got <- a
	}))
	defer srv.Close()

	dir := filepath.Join(t.TempDir(), "dev")
	c := &tca{t: t, dir: dir, secrets: []string{secret}}
	if err := startDev(t, dir).stop(t); err != nil {
		t.Fatal(err)
	}
	sf := writeSecret(t, t.TempDir(), "hook", secret)
	f, err := os.OpenFile(filepath.Join(dir, "mica.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	extDir := t.TempDir()
	if _, err := f.WriteString("\nalerts:\n  interval: 1h\n  webhooks:\n    - url: " + srv.URL + "/hook\n      secret_file: " + sf + "\n" +
		"discovery:\n  file_roots: [" + extDir + "]\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	ext := filepath.Join(extDir, "ext.pem")
	openssl(t, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(t.TempDir(), "k.pem"), "-out", ext, "-subj", "/CN=shadow-it.test", "-days", "30")
	c.must(c.data("discover", "files", ext)...)

	d := startDev(t, dir)
	select {
	case a := <-got:
		if a.Kind != alerts.KindExternal || a.Count != 1 || a.Items[0].CommonName != "shadow-it.test" {
			t.Errorf("alert = %+v, want one external certificate shadow-it.test", a)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no alert within 60s")
	}
	if err := d.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
	if strings.Contains(d.stdout+d.stderr.String(), secret) {
		t.Error("the webhook secret appeared in mica's output")
	}
}

// TestAlertEngineAnomalyConfig: serve builds its alert engine from valid
// anomaly settings, and one naming a profile that does not exist, a bad
// time zone or a bad network stops serve with a configuration error
// naming the setting, rather than silently watching nothing. (That the
// settings then drive the detection is tested in package alerts.)
func TestAlertEngineAnomalyConfig(t *testing.T) {
	t.Parallel()
	e := &env{getenv: func(k string) string { return map[string]string{"HOOK": "s3cret"}[k] }}
	base := config.Alerts{Webhooks: []config.AlertWebhook{{URL: "https://hooks.test/x", SecretEnv: "HOOK"}}}
	profiles := map[string]ca.Profile{"device": {}, "server": {}}
	cases := []struct {
		name    string
		edit    func(a *config.Alerts)
		wantErr string
	}{
		{"valid", func(a *config.Alerts) {
			a.EnrollmentHours = map[string]config.AlertHours{"device": {Hours: "08-18", Days: "mon-fri", TZ: "Europe/Berlin"}}
			a.KnownNetworks = map[string][]string{"*": {"10.0.0.0/8"}}
		}, ""},
		{"unknown profile", func(a *config.Alerts) {
			a.EnrollmentHours = map[string]config.AlertHours{"printer": {Hours: "08-18"}}
		}, "alerts.enrollment_hours.printer: no such profile"},
		{"bad zone", func(a *config.Alerts) {
			a.KeyHours = map[string]config.AlertHours{"issuing-1": {Hours: "08-18", TZ: "Nowhere/City"}}
		}, "alerts.key_hours.issuing-1"},
		{"bad CIDR", func(a *config.Alerts) {
			a.KnownNetworks = map[string][]string{"device": {"10.0.0.0/33"}}
		}, "alerts.known_networks.device[0]"},
	}
	for _, tc := range cases {
		a := base
		tc.edit(&a)
		eng, err := alertEngine(e, &engine{cfg: &config.Config{Alerts: a, Profiles: profiles}})
		var ce *cliError
		switch {
		case tc.wantErr == "" && (err != nil || eng == nil):
			t.Errorf("%s: alertEngine = %v, %v; want an engine", tc.name, eng, err)
		case tc.wantErr != "" && (!errors.As(err, &ce) || ce.code != exitConfig || !strings.Contains(ce.msg, tc.wantErr)):
			t.Errorf("%s: alertEngine error = %v, want a configuration error containing %q", tc.name, err, tc.wantErr)
		}
	}
}

// TestAlertEngineKeyLife: serve's alert engine gets the key policy. On a
// fresh CA whose rotation warning (400d) exceeds the issuing key's
// cryptoperiod (1y) and with no verified backup, one evaluation delivers
// a signed key_rotation_due alert for the issuing key and a
// backup_overdue alert; a second engine (a restart) sends nothing.
func TestAlertEngineKeyLife(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing")
	ctx := context.Background()
	cfg, err := config.Load(config.Path(c.dir))
	if err != nil {
		t.Fatal(err)
	}
	secret := "keylife-" + newSecret(t)
	got := make(chan alerts.Alert, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var a alerts.Alert
		if !alerts.Verify([]byte(secret), body, r.Header.Get(alerts.HeaderSignature)) || json.Unmarshal(body, &a) != nil {
			t.Errorf("bad delivery %s", body)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		got <- a
	}))
	defer srv.Close()
	cfg.KeyPolicy.RotationWarning = config.Duration(400 * config.Day)
	cfg.Alerts = config.Alerts{Webhooks: []config.AlertWebhook{{URL: srv.URL, SecretEnv: "HOOK"}}}
	e := &env{getenv: func(k string) string { return map[string]string{"HOOK": secret}[k] }}
	g, err := openEngine(ctx, e, cfg, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for round := range 2 {
		eng, err := alertEngine(e, g)
		if err != nil || eng == nil {
			t.Fatalf("alertEngine = %v, %v", eng, err)
		}
		sent, err := eng.Evaluate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]alerts.Alert{}
		for _, a := range sent {
			kinds[a.Kind] = a
		}
		if round == 1 {
			if len(sent) != 0 {
				t.Errorf("second engine sent %+v, want nothing (de-duplicated in the store)", sent)
			}
			continue
		}
		rot, ok := kinds[alerts.KindKeyRotationDue]
		if !ok || !slicesContainKey(rot.Items, "issuing") {
			t.Errorf("key_rotation_due = %+v, want the issuing key", rot)
		}
		if b, ok := kinds[alerts.KindBackupOverdue]; !ok || b.Count != 1 || b.Items[0].Subject != "backup:never" {
			t.Errorf("backup_overdue = %+v, want one backup:never", b)
		}
		for range len(sent) {
			select {
			case <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("the receiver did not get every alert")
			}
		}
	}
}

func slicesContainKey(items []alerts.Item, id string) bool {
	for _, it := range items {
		if it.KeyID == id {
			return true
		}
	}
	return false
}
