package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// intentEnv is one CA installation (store and keys) on which a test
// starts several CA processes in turn, the way replicas or a restarted
// server share them.
type intentEnv struct {
	st   *inventory.Store
	keys *fakeKeys
	init *InitResult
}

func newIntentEnv(t *testing.T, st *inventory.Store) *intentEnv {
	t.Helper()
	keys := newFakeKeys()
	res, err := Init(context.Background(), InitOptions{Store: st, Keys: keys, RootKeyType: hsm.ECP256, IssuingKeyType: hsm.ECP256,
		URLs: testURLs, Actor: "test", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return &intentEnv{st: st, keys: keys, init: res}
}

// process starts one CA "process" on the installation. rs replaces the
// revocation store (nil: the real one); now replaces the clock (nil: real).
func (e *intentEnv) process(t *testing.T, cfg RevocationConfig, rs RevocationStore, now func() time.Time) *CA {
	t.Helper()
	if rs == nil {
		rs = e.st
	}
	c, err := New(context.Background(), Options{Store: e.st, Keys: e.keys, URLs: testURLs, Logger: discardLogger(),
		RevocationStore: rs, Revocation: cfg, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *intentEnv) issue(t *testing.T, c *CA) *x509.Certificate {
	t.Helper()
	iss, err := c.Issue(context.Background(), Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "a.test", "a.test"), Profile: "server", Requester: "t", Protocol: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	return iss.Certificate
}

// crlLists reports whether the issuer's latest full CRL lists serial.
func crlLists(t *testing.T, c *CA, serial *big.Int) bool {
	t.Helper()
	crl, err := c.CRL(context.Background(), c.IssuerID()+".crl")
	if err != nil {
		t.Fatal(err)
	}
	rl, err := x509.ParseRevocationList(crl.DER)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range rl.RevokedCertificateEntries {
		if ent.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

func waitCRLLists(t *testing.T, c *CA, serial *big.Int, what string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !crlLists(t, c, serial); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the CRL never listed serial %x", what, serial)
		}
	}
}

// TestCRLIntentSurvivesCrash: a revocation whose process dies inside the
// CRL batch (after the commit, before the flush) still reaches the CRL:
// the restarted worker finds the durable mark and signs one CRLDelay
// after its start. Before the mark, the intent was an in-memory flag and
// the CRL missed the revocation until its periodic re-sign (12 h).
func TestCRLIntentSurvivesCrash(t *testing.T) {
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newIntentEnv(t, st)
			cfg := RevocationConfig{CRLDelay: time.Hour, SweepEvery: time.Hour}
			ctx := context.Background()

			// Process 1 issues, signs a fresh CRL, revokes, and dies with
			// its batch open.
			p1 := e.process(t, cfg, nil, nil)
			leaf := e.issue(t, p1)
			if err := p1.GenerateCRLs(ctx, ""); err != nil {
				t.Fatal(err)
			}
			opened := make(chan struct{}, 1)
			p1.hooks.crlBatch = func(time.Duration) <-chan time.Time {
				select {
				case opened <- struct{}{}:
				default:
				}
				return nil // never closes: the process dies first
			}
			ctx1, kill := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { p1.RunRevocation(ctx1); close(done) }()
			if _, err := p1.Revoke(ctx, RevokeRequest{Serial: leaf.SerialNumber.Text(16), Reason: "keyCompromise", Actor: "t", Protocol: "cli"}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-opened:
			case <-time.After(10 * time.Second):
				t.Fatal("the revocation opened no CRL batch")
			}
			kill()
			<-done
			if crlLists(t, p1, leaf.SerialNumber) {
				t.Fatal("the CRL lists the revocation before any flush; the test would prove nothing")
			}
			if _, err := st.CRLDirtyMark(ctx, p1.IssuerID()); err != nil {
				t.Fatalf("after the revocation's commit: dirty mark: %v, want one", err)
			}

			// Process 2 starts on the same store: it must schedule the
			// CRL one CRLDelay out, and sign it when the batch closes.
			p2 := e.process(t, cfg, nil, nil)
			asked := make(chan time.Duration, 1)
			fire := make(chan time.Time, 1)
			p2.hooks.crlBatch = func(d time.Duration) <-chan time.Time {
				select {
				case asked <- d:
				default:
				}
				return fire
			}
			ctx2, stop := context.WithCancel(ctx)
			done2 := make(chan struct{})
			go func() { p2.RunRevocation(ctx2); close(done2) }()
			defer func() { stop(); <-done2 }()
			select {
			case d := <-asked:
				if d != cfg.CRLDelay {
					t.Errorf("restarted worker batches for %v, want CRLDelay %v", d, cfg.CRLDelay)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the restarted worker scheduled no CRL for the crashed process's revocation")
			}
			if crlLists(t, p2, leaf.SerialNumber) {
				t.Fatal("CRL signed before the batch closed")
			}
			fire <- time.Now()
			waitCRLLists(t, p2, leaf.SerialNumber, "after the restarted worker's batch")
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				_, err := st.CRLDirtyMark(ctx, p2.IssuerID())
				if errors.Is(err, inventory.ErrNotFound) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("dirty mark after the covering CRL: %v, want cleared", err)
				}
			}
		})
	}
}

// TestCRLIntentSweptByReplica: a replica that was already running (it
// saw no kick: the revocation happened in a process that then died)
// signs the CRL on its sweep once the mark is CRLDelay old, and leaves a
// younger mark to the batch of the process that made it.
func TestCRLIntentSweptByReplica(t *testing.T) {
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newIntentEnv(t, st)
			cfg := RevocationConfig{CRLDelay: time.Hour, SweepEvery: time.Hour}
			ctx := context.Background()
			dead := e.process(t, cfg, nil, nil)
			leaf := e.issue(t, dead)
			if err := dead.GenerateCRLs(ctx, ""); err != nil {
				t.Fatal(err)
			}
			if _, err := dead.Revoke(ctx, RevokeRequest{Serial: leaf.SerialNumber.Text(16), Reason: "superseded", Actor: "t", Protocol: "cli"}); err != nil {
				t.Fatal(err)
			}
			var clock atomic.Pointer[time.Time]
			now := time.Now()
			clock.Store(&now)
			live := e.process(t, cfg, nil, func() time.Time { return *clock.Load() })

			signed := live.RevocationStats().CRLsSigned
			live.rev.sweep(ctx)
			if n := live.RevocationStats().CRLsSigned - signed; n != 0 || crlLists(t, live, leaf.SerialNumber) {
				t.Fatalf("sweep signed %d CRLs for a mark younger than CRLDelay; want 0 (its own batch signs it)", n)
			}
			later := now.Add(cfg.CRLDelay + time.Second)
			clock.Store(&later)
			live.rev.sweep(ctx)
			if !crlLists(t, live, leaf.SerialNumber) {
				t.Fatal("sweep after CRLDelay: the CRL does not list the dead process's revocation")
			}
			if _, err := st.CRLDirtyMark(ctx, live.IssuerID()); !errors.Is(err, inventory.ErrNotFound) {
				t.Fatalf("dirty mark after the sweep's CRL: %v, want cleared", err)
			}
		})
	}
}

// raceStore revokes another certificate right after the CRL's entries
// are read, before the CRL is stored and the mark cleared: a revocation
// racing the signing.
type raceStore struct {
	*inventory.Store
	once   atomic.Bool
	racer  func() error
	raceOK chan error
}

func (s *raceStore) RevokedCertificates(ctx context.Context, f inventory.RevokedFilter, fn func(inventory.RevokedEntry) error) error {
	err := s.Store.RevokedCertificates(ctx, f, fn)
	if err == nil && s.once.CompareAndSwap(false, true) {
		s.raceOK <- s.racer()
	}
	return err
}

// TestCRLIntentCompareAndClear: a revocation committed while a CRL is
// being signed is not in that CRL, so the signer must not clear its mark;
// the next run (here a sweep) lists it.
func TestCRLIntentCompareAndClear(t *testing.T) {
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newIntentEnv(t, st)
			cfg := RevocationConfig{CRLDelay: time.Hour, SweepEvery: time.Hour}
			ctx := context.Background()
			plain := e.process(t, cfg, nil, nil)
			first, second := e.issue(t, plain), e.issue(t, plain)
			if _, err := plain.Revoke(ctx, RevokeRequest{Serial: first.SerialNumber.Text(16), Actor: "t", Protocol: "cli"}); err != nil {
				t.Fatal(err)
			}
			rs := &raceStore{Store: st, raceOK: make(chan error, 1), racer: func() error {
				_, err := plain.Revoke(ctx, RevokeRequest{Serial: second.SerialNumber.Text(16), Actor: "t", Protocol: "cli"})
				return err
			}}
			signer := e.process(t, cfg, rs, nil)
			if err := signer.GenerateCRLs(ctx, signer.IssuerID()); err != nil {
				t.Fatal(err)
			}
			if err := <-rs.raceOK; err != nil {
				t.Fatal(err)
			}
			if !crlLists(t, signer, first.SerialNumber) || crlLists(t, signer, second.SerialNumber) {
				t.Fatal("setup: the CRL should list the first revocation and miss the racing one")
			}
			if _, err := st.CRLDirtyMark(ctx, signer.IssuerID()); err != nil {
				t.Fatalf("after a CRL that missed a racing revocation: dirty mark %v, want it kept", err)
			}
			var clock atomic.Pointer[time.Time]
			later := time.Now().Add(cfg.CRLDelay + time.Second)
			clock.Store(&later)
			sweeper := e.process(t, cfg, nil, func() time.Time { return *clock.Load() })
			sweeper.rev.sweep(ctx)
			if !crlLists(t, sweeper, second.SerialNumber) {
				t.Fatal("the next sweep's CRL does not list the racing revocation")
			}
		})
	}
}
