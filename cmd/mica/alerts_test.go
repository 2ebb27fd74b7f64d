package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/alerts"
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
	if _, err := f.WriteString("\nalerts:\n  interval: 1h\n  webhooks:\n    - url: " + srv.URL + "/hook\n      secret_file: " + sf + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	ext := filepath.Join(t.TempDir(), "ext.pem")
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
