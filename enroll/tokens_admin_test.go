package enroll_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestTokenAdmin: the checks the CLI and the admin API share, and a
// created token stores only its digest, with the injected clock.
func TestTokenAdmin(t *testing.T) {
	t.Parallel()
	cfg := enroll.Config{Labels: map[string]enroll.Label{"default": {Profile: "device", Tokens: true}, "certs": {Profile: "device", ClientCerts: true}}}
	for _, tc := range []struct {
		name, label string
		names       []string
		ttl         time.Duration
		want        string // substring of the error; "" for none
	}{
		{"ok", "default", []string{"a.test", "ip:10.0.0.1"}, time.Hour, ""},
		{"ok at the cap", "default", nil, enroll.MaxTokenTTL, ""},
		{"unknown label", "nope", nil, time.Hour, `no EST label "nope"`},
		{"label without tokens", "certs", nil, time.Hour, "does not accept tokens"},
		{"zero ttl", "default", nil, 0, "ttl"},
		{"over the cap", "default", nil, enroll.MaxTokenTTL + time.Second, "ttl must be positive and at most 90d"},
		{"blank name", "default", []string{"a.test", " "}, time.Hour, "names"},
		{"control character", "default", []string{"a\n.test"}, time.Hour, "names"},
		{"too many names", "default", make([]string, enroll.MaxTokenNames+1), time.Hour, "at most"},
	} {
		err := enroll.CheckTokenRequest(cfg, tc.label, tc.names, tc.ttl)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, inventory.ErrInvalid)) {
			t.Errorf("%s: CheckTokenRequest = %v, want %q (ErrInvalid)", tc.name, err, tc.want)
		}
	}

	st := inventorytest.SQLite(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	a := &enroll.TokenAdmin{Store: st, Config: cfg, Now: func() time.Time { return now }}
	if got := a.TokenLabels(); len(got) != 1 || got[0] != "default" {
		t.Errorf("TokenLabels = %q, want [default]", got)
	}
	ctx := context.Background()
	if _, _, err := a.CreateToken(ctx, "certs", nil, time.Hour, inventory.Event{Actor: "user:root"}); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("CreateToken(certs) = %v, want ErrInvalid", err)
	}
	tok, cred, err := a.CreateToken(ctx, "default", []string{"a.test"}, time.Hour, inventory.Event{Actor: "user:root", Protocol: "ui", Outcome: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	user, pass, _ := strings.Cut(cred, ":")
	if user != tok.ID || !tok.ExpiresAt.Equal(now.Add(time.Hour)) || tok.CreatedBy != "user:root" || strings.Contains(tok.SecretSHA256, pass) {
		t.Errorf("token %+v for credential %s", tok, user)
	}
	evs, err := st.Events(ctx, inventory.EventFilter{Action: "est.token.create"})
	if err != nil || len(evs) != 1 || evs[0].Protocol != "ui" || strings.Contains(string(evs[0].Details), pass) || !strings.Contains(string(evs[0].Details), "dns:a.test") {
		t.Errorf("create events = %+v, %v", evs, err)
	}
}
