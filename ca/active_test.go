package ca

import (
	"context"
	"crypto/x509"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// testClock is an injected clock tests move by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestIssuerSwitchWithoutRestart: a running CA learns of a rotation
// scheduled after it started (the watch ticker), keeps issuing with the
// old issuer until the activation time, and switches by itself at that
// time — with issuance running concurrently, every certificate is signed
// by the issuer its record names. The old issuer keeps OCSP and CRL
// service after the switch.
func TestIssuerSwitchWithoutRestart(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(testing.TB) *inventory.Store{"sqlite": inventorytest.SQLite, "postgres": inventorytest.Postgres} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e := newKeyEnv(t, open(t))
			clk := newTestClock(time.Now())
			c, err := New(ctx, Options{Store: e.st, Keys: e.meter, URLs: testURLs, Logger: discardLogger(), RevocationStore: e.st, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			oldID := e.init.IssuingIssuer.ID
			before, err := issueOne(t, c)
			if err != nil {
				t.Fatal(err)
			}

			// Scheduled after the CA started: only the store knows.
			rootSigner, _ := e.keys.Signer(ctx, e.init.RootKeyURI)
			at := clk.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
			res, err := Rotate(ctx, RotateOptions{Store: e.st, Keys: e.meter, RootSigner: rootSigner, NewID: "issuing-next",
				At: at, URLs: testURLs, Who: e.who, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.meter.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			watched := make(chan struct{})
			go func() { defer close(watched); c.RunIssuerWatch(ctx, 10*time.Millisecond) }()
			waitFor(t, func() bool { _, _, next := c.ActiveIssuer(); return next.Equal(at) })
			if got, _, _ := c.ActiveIssuer(); got != oldID {
				t.Fatalf("before the activation time the CA uses %s, want %s", got, oldID)
			}

			// Issue concurrently while the clock passes the activation time.
			var wg sync.WaitGroup
			var mu sync.Mutex
			var issued []*Issued
			byIssuer := map[string]int{}
			stop := make(chan struct{})
			var stopOnce sync.Once
			halt := func() { stopOnce.Do(func() { close(stop) }) }
			defer halt() // a failed barrier must not leave issuers running
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						iss, err := issueOne(t, c)
						if err != nil {
							t.Errorf("issue during the switch: %v", err)
							return
						}
						mu.Lock()
						issued = append(issued, iss)
						byIssuer[iss.Record.IssuerID]++
						mu.Unlock()
					}
				}()
			}
			// Barriers, not sleeps: the clock passes the activation time
			// only once the issuers are busy on the old CA, and they stop
			// only once they have issued under the new one, so the
			// concurrent issuance provably spans the switch.
			issuedBy := func(id string) int {
				mu.Lock()
				defer mu.Unlock()
				return byIssuer[id]
			}
			waitFor(t, func() bool { return issuedBy(oldID) >= 4 })
			clk.Advance(at.Sub(clk.Now()) + time.Second)
			waitFor(t, func() bool { return issuedBy("issuing-next") >= 4 })
			halt()
			wg.Wait()
			if byIssuer[oldID] == 0 || byIssuer["issuing-next"] == 0 {
				t.Fatalf("concurrent issuance by issuer = %v, want some from %s and some from issuing-next", byIssuer, oldID)
			}

			after, err := issueOne(t, c)
			if err != nil {
				t.Fatal(err)
			}
			if after.Record.IssuerID != "issuing-next" || c.IssuerID() != "issuing-next" {
				t.Fatalf("after the activation time issuance uses %s, want issuing-next", after.Record.IssuerID)
			}
			if err := after.Certificate.CheckSignatureFrom(res.Cert); err != nil {
				t.Errorf("new issuance is not signed by the new key: %v", err)
			}
			if len(after.Chain) == 0 || !after.Chain[0].Equal(res.Cert) {
				t.Errorf("new issuance's chain does not start with the new issuer")
			}
			byID := map[string]*x509.Certificate{oldID: e.init.Issuing, "issuing-next": res.Cert}
			for _, iss := range append(issued, before) {
				if err := iss.Certificate.CheckSignatureFrom(byID[iss.Record.IssuerID]); err != nil {
					t.Errorf("certificate %s recorded under %s is not signed by it: %v", iss.Record.Serial, iss.Record.IssuerID, err)
				}
				if !iss.Chain[0].Equal(byID[iss.Record.IssuerID]) {
					t.Errorf("certificate %s: chain does not match its issuer %s", iss.Record.Serial, iss.Record.IssuerID)
				}
			}
			if a := c.RespondOCSP(ctx, ocspRequest(t, before.Certificate, e.init.Issuing)); a.Status != "good" {
				t.Errorf("OCSP for the old issuer's certificate after the switch = %s, want good", a.Status)
			}
			if a := c.RespondOCSP(ctx, ocspRequest(t, after.Certificate, res.Cert)); a.Status != "good" {
				t.Errorf("OCSP for the new issuer's certificate = %s, want good", a.Status)
			}
			if err := c.GenerateCRLs(ctx, ""); err != nil {
				t.Errorf("CRLs after the switch: %v", err)
			}
			for _, id := range []string{oldID, "issuing-next"} {
				if crl, err := c.CRL(ctx, id+".crl"); err != nil || crl == nil {
					t.Errorf("CRL of %s after the switch: %v", id, err)
				}
			}
			cancel()
			<-watched
		})
	}
}

// TestIssuerSwitchLazy: a CA that already knows the schedule switches on
// the first issuance after the activation time, without any ticker.
func TestIssuerSwitchLazy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newKeyEnv(t, inventorytest.SQLite(t))
	clk := newTestClock(time.Now())
	rootSigner, _ := e.keys.Signer(ctx, e.init.RootKeyURI)
	at := clk.Now().Add(time.Hour).Truncate(time.Second)
	if _, err := Rotate(ctx, RotateOptions{Store: e.st, Keys: e.meter, RootSigner: rootSigner, NewID: "issuing-lazy",
		At: at, URLs: testURLs, Who: e.who, Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	if err := e.meter.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Options{Store: e.st, Keys: e.meter, URLs: testURLs, Logger: discardLogger(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		advance time.Duration
		want    string
	}{
		{0, e.init.IssuingIssuer.ID},
		{59 * time.Minute, e.init.IssuingIssuer.ID},
		{2 * time.Minute, "issuing-lazy"},
	} {
		clk.Advance(tc.advance)
		iss, err := issueOne(t, c)
		if err != nil {
			t.Fatal(err)
		}
		if iss.Record.IssuerID != tc.want {
			t.Errorf("at %s issued by %s, want %s", clk.Now().Sub(at), iss.Record.IssuerID, tc.want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached in 5s")
}
