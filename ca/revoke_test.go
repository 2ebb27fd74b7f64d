package ca

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// colonUpper writes a serial the way openssl and browsers show it.
func colonUpper(serial string) string {
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	var b strings.Builder
	for i := 0; i < len(serial); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strings.ToUpper(serial[i : i+2]))
	}
	return b.String()
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		hooked []*inventory.Certificate
	)
	env := newTestEnv(t, hsm.ECP256, func(o *Options) {
		o.OnRevoke = func(_ context.Context, c *inventory.Certificate) {
			mu.Lock()
			defer mu.Unlock()
			hooked = append(hooked, c)
		}
	})
	ctx := context.Background()
	iss, err := env.ca.Issue(ctx, Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "a.test"), Profile: "server"})
	if err != nil {
		t.Fatal(err)
	}
	serial := iss.Record.Serial

	rec, err := env.ca.Revoke(ctx, RevokeRequest{Serial: colonUpper(serial), Reason: "keyCompromise", Actor: "alice", Protocol: "ui", Source: "192.0.2.9"})
	if err != nil {
		t.Fatalf("Revoke(%s) = %v", colonUpper(serial), err)
	}
	if rec.State != inventory.StateRevoked || rec.RevocationReason != "keyCompromise" || rec.RevokedAt == nil {
		t.Errorf("Revoke = state %s reason %q at %v, want revoked keyCompromise", rec.State, rec.RevocationReason, rec.RevokedAt)
	}
	if len(hooked) != 1 || hooked[0].Serial != serial {
		t.Errorf("OnRevoke calls = %v, want one for %s", hooked, serial)
	}
	evs := env.store.eventsWith("cert.revoke", "ok")
	if len(evs) != 1 || evs[0].Actor != "alice" || evs[0].Object != "cert:"+env.ca.IssuerID()+"/"+serial || !strings.Contains(string(evs[0].Details), "keyCompromise") {
		t.Errorf("revoke events = %+v", evs)
	}

	tests := []struct {
		name    string
		rr      RevokeRequest
		kind    error
		wantMsg string
	}{
		{"twice", RevokeRequest{Serial: serial}, ErrAlreadyRevoked, "already revoked"},
		{"twice with issuer", RevokeRequest{IssuerID: env.ca.IssuerID(), Serial: serial, Reason: "superseded"}, ErrAlreadyRevoked, "already revoked"},
		{"unknown serial", RevokeRequest{Serial: "01:02:03"}, ErrNotFound, "no certificate with serial 010203"},
		{"unknown at issuer", RevokeRequest{IssuerID: "nope", Serial: serial}, ErrNotFound, "at issuer nope"},
		{"bad reason", RevokeRequest{Serial: serial, Reason: "becauseISaidSo"}, ErrBadRevocation, `unknown revocation reason "becauseISaidSo"`},
		{"certificateHold", RevokeRequest{Serial: serial, Reason: "certificateHold"}, ErrBadRevocation, "permanent"},
		{"not hex", RevokeRequest{Serial: "xyz"}, ErrBadRevocation, "not hexadecimal"},
		{"empty serial", RevokeRequest{Serial: " "}, ErrBadRevocation, "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.ca.Revoke(ctx, tc.rr)
			if !errors.Is(err, tc.kind) || !strings.Contains(UserMessage(err), tc.wantMsg) {
				t.Fatalf("Revoke(%+v) = %v, want %v containing %q", tc.rr, err, tc.kind, tc.wantMsg)
			}
		})
	}
	if len(hooked) != 1 {
		t.Errorf("OnRevoke called %d times, want once", len(hooked))
	}
	if n := len(env.store.eventsWith("cert.revoke", "denied")); n != len(tests) {
		t.Errorf("%d denied revoke events, want %d", n, len(tests))
	}
}

// TestRevokeNeverIssued: a reservation that failed cannot be revoked.
func TestRevokeNeverIssued(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, hsm.ECP256, nil)
	env.keys.failSign = true
	if _, err := env.ca.Issue(context.Background(), Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "a.test"), Profile: "server"}); err == nil {
		t.Fatal("Issue with a failing HSM succeeded")
	}
	certs, _ := env.store.FindCertificates(context.Background(), inventory.CertFilter{})
	if len(certs) != 1 {
		t.Fatalf("%d rows, want 1 failed reservation", len(certs))
	}
	_, err := env.ca.Revoke(context.Background(), RevokeRequest{Serial: certs[0].Serial})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(UserMessage(err), "never issued") {
		t.Errorf("Revoke(failed reservation) = %v, want ErrNotFound \"never issued\"", err)
	}
}

func TestParseRevocationReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		name string
		code int
		ok   bool
	}{
		{"", "unspecified", 0, true},
		{"keycompromise", "keyCompromise", 1, true},
		{"CACompromise", "cACompromise", 2, true},
		{"5", "cessationOfOperation", 5, true},
		{"9", "privilegeWithdrawn", 9, true},
		{"aACompromise", "aACompromise", 10, true},
		{"6", "", 0, false},
		{"removeFromCRL", "", 0, false},
		{"7", "", 0, false},
	} {
		name, code, err := ParseRevocationReason(tc.in)
		if (err == nil) != tc.ok || name != tc.name || code != tc.code {
			t.Errorf("ParseRevocationReason(%q) = %q, %d, %v; want %q, %d, ok=%t", tc.in, name, code, err, tc.name, tc.code, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadRevocation) {
			t.Errorf("ParseRevocationReason(%q) error kind = %v, want ErrBadRevocation", tc.in, KindOf(err))
		}
	}
}

func TestNormalizeSerial(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"01:AB:cd":   "1abcd",
		"0x00FF":     "ff",
		" 0a 0b ":    "a0b",
		"1abcd":      "1abcd",
		"00:00:01":   "1",
		"00":         "",
		"g1":         "",
		"":           "",
		"12-34-56ab": "123456ab",
	} {
		got, err := normalizeSerial(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("normalizeSerial(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
