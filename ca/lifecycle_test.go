package ca

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// TestCommittedBeforeReturned: a crash between signing and committing
// leaves the certificate "requested" and returns nothing; a crash after
// committing finds it "issued" before anything was returned.
func TestCommittedBeforeReturned(t *testing.T) {
	t.Parallel()
	type crash struct{ point string }
	for _, tc := range []struct {
		point     string
		wantState inventory.State
	}{
		{crashAfterSign, inventory.StateRequested},
		{crashAfterCommit, inventory.StateIssued},
	} {
		t.Run(tc.point, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, hsm.ECP256, nil)
			var states []inventory.State
			hook := func() {
				// The process "dies" here: look at the store as a restarted
				// process would, then unwind without returning.
				certs, _ := env.store.FindCertificates(context.Background(), inventory.CertFilter{})
				for _, c := range certs {
					states = append(states, c.State)
				}
				panic(crash{tc.point})
			}
			if tc.point == crashAfterSign {
				env.ca.hooks.afterSign = hook
			} else {
				env.ca.hooks.afterCommit = hook
			}
			var got *Issued
			func() {
				defer func() {
					if r := recover(); r != (crash{tc.point}) {
						t.Fatalf("recovered %v, want the crash", r)
					}
				}()
				got, _ = env.ca.Issue(context.Background(), Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "a.test"), Profile: "server"})
			}()
			if got != nil {
				t.Fatalf("Issue returned a certificate across a crash")
			}
			if len(states) != 1 || states[0] != tc.wantState {
				t.Fatalf("store at %s = %v, want one certificate %s", tc.point, states, tc.wantState)
			}
		})
	}
}

// TestIssueFailures: when signing or committing fails, Issue returns an
// error and no certificate, and the reservation is marked failed.
func TestIssueFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		break_  func(*testEnv)
		kind    error
		wantMsg string
	}{
		{"commit fails", func(e *testEnv) { e.store.errComplete = errors.New("disk full") }, ErrUnavailable, "it was not issued"},
		{"HSM fails", func(e *testEnv) { e.keys.failSign = true }, ErrUnavailable, "could not sign"},
		{"serial collisions exhausted", func(e *testEnv) { e.store.dupReserves = maxSerialAttempts }, ErrUnavailable, "recording the certificate request failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, hsm.ECP256, nil)
			tc.break_(env)
			got, err := env.ca.Issue(context.Background(), Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "a.test"), Profile: "server"})
			if got != nil {
				t.Fatalf("Issue(%s) returned a certificate", tc.name)
			}
			if !errors.Is(err, tc.kind) || !strings.Contains(UserMessage(err), tc.wantMsg) {
				t.Fatalf("Issue(%s) = %v, want %v containing %q", tc.name, err, tc.kind, tc.wantMsg)
			}
			if n := env.store.count(inventory.StateIssued); n != 0 {
				t.Errorf("Issue(%s): %d certificates issued, want 0", tc.name, n)
			}
			if n := env.store.count(inventory.StateRequested); n != 0 {
				t.Errorf("Issue(%s): %d left requested, want them failed", tc.name, n)
			}
		})
	}
}

// TestSerialCollisionRetried: a duplicate serial is retried with a new one.
func TestSerialCollisionRetried(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, hsm.ECP256, nil)
	env.store.dupReserves = maxSerialAttempts - 1
	iss, err := env.ca.Issue(context.Background(), Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "a.test"), Profile: "server"})
	if err != nil {
		t.Fatalf("Issue after %d collisions = %v", maxSerialAttempts-1, err)
	}
	if iss.Record.State != inventory.StateIssued {
		t.Errorf("state = %s, want issued", iss.Record.State)
	}
}

// TestIssueAuditEvent checks the commit event's fields.
func TestIssueAuditEvent(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, hsm.ECP256, nil)
	iss, err := env.ca.Issue(context.Background(), Request{
		CSR: makeCSR(t, subjectKey(t, "EC-P256"), "a.test"), Profile: "server",
		Requester: "acct/1", Protocol: "acme", Source: "192.0.2.1",
	})
	if err != nil {
		t.Fatal(err)
	}
	evs := env.store.eventsWith("cert.issue", "ok")
	if len(evs) != 1 {
		t.Fatalf("%d cert.issue ok events, want 1", len(evs))
	}
	e := evs[0]
	if want := "cert:" + env.ca.IssuerID() + "/" + iss.Record.Serial; e.Object != want || e.Actor != "acct/1" || e.Protocol != "acme" || e.Source != "192.0.2.1" {
		t.Errorf("event = %+v, want object %s actor acct/1 protocol acme source 192.0.2.1", e, want)
	}
	for _, k := range []string{`"profile":"server"`, `"sans":["dns:a.test"]`, `"key_type":"EC-P256"`, `"not_after"`} {
		if !strings.Contains(string(e.Details), k) {
			t.Errorf("event details %s lack %s", e.Details, k)
		}
	}
}

// TestPredecessor: a renewal names the certificate it replaces, in any
// serial notation; a malformed one is refused before anything is written.
func TestPredecessor(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, hsm.ECP256, nil)
	ctx := context.Background()
	csr := makeCSR(t, subjectKey(t, "EC-P256"), "a.test")
	first, err := env.ca.Issue(ctx, Request{CSR: csr, Profile: "server"})
	if err != nil {
		t.Fatal(err)
	}
	for _, pred := range []string{colonUpper(first.Record.Serial), "other-ca/" + first.Record.Serial} {
		renewed, err := env.ca.Issue(ctx, Request{CSR: csr, Profile: "server", Predecessor: pred})
		if err != nil {
			t.Fatalf("Issue(predecessor %s) = %v", pred, err)
		}
		wantIssuer := ""
		if strings.Contains(pred, "/") {
			wantIssuer = "other-ca"
		}
		if renewed.Record.Predecessor != first.Record.Serial || renewed.Record.PredecessorIssuerID != wantIssuer {
			t.Errorf("predecessor = %q/%q, want %q/%q", renewed.Record.PredecessorIssuerID, renewed.Record.Predecessor, wantIssuer, first.Record.Serial)
		}
	}
	_, err = env.ca.Issue(ctx, Request{CSR: csr, Profile: "server", Predecessor: "not-a-serial"})
	if !errors.Is(err, ErrPolicy) || !strings.Contains(UserMessage(err), "predecessor") {
		t.Errorf("Issue(bad predecessor) = %v, want ErrPolicy naming the predecessor", err)
	}
}
