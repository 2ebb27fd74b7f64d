package main

import (
	"context"
	"crypto/x509"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/config"
)

// clientTrust is the pool `mica serve` verifies TLS client certificates
// (EST over mutual TLS, the agent) against: our root and chain, every
// issuing CA not retired, and the EST labels' manufacturer roots. The
// issuing CA is an anchor too, because devices commonly send their leaf
// alone and Go's TLS server has no separate intermediates pool for client
// chains. The pool is rebuilt from the store every interval, so an issuing
// CA that a rotation creates or activates while the server runs (on this
// replica or another) is trusted at the next rebuild, without a restart.
// Routes, not this pool, decide what an unauthenticated client may do.
//
// A switch of the active issuing CA on this replica (CA.Reload at the
// activation time) makes the next handshake rebuild the pool at once,
// so devices enrolled under the new CA re-enroll from its first minute.
type clientTrust struct {
	pool     atomic.Pointer[x509.CertPool]
	builtFor atomic.Value // string: the active issuer ID the pool was built for
	retryAt  atomic.Int64 // unix nanos before which a failed switch rebuild is not retried
	mu       sync.Mutex   // one rebuild at a time
	ca       *ca.CA
	est      config.EST
	log      *slog.Logger
	count    atomic.Int64 // certificates in the current pool, for logs
}

// newClientTrust builds the first pool; an unreadable manufacturer root is
// a configuration error here, as at start-up before.
func newClientTrust(ctx context.Context, c *ca.CA, est config.EST, log *slog.Logger) (*clientTrust, error) {
	t := &clientTrust{ca: c, est: est, log: log}
	if err := t.rebuild(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// Pool is the current pool; safe for concurrent use, once per handshake.
// It rebuilds first when the active issuing CA changed since the last
// build (a failed rebuild keeps the previous pool).
func (t *clientTrust) Pool() *x509.CertPool {
	if id, _ := t.builtFor.Load().(string); id != t.ca.IssuerID() && time.Now().UnixNano() >= t.retryAt.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := t.rebuildFor(ctx, true); err != nil {
			// Back off: handshakes must not each wait on a failing store.
			t.retryAt.Store(time.Now().Add(10 * time.Second).UnixNano())
			t.log.Warn("rebuilding the client-certificate trust failed; keeping the previous one", "err", err)
		}
	}
	return t.pool.Load()
}

func (t *clientTrust) rebuild(ctx context.Context) error { return t.rebuildFor(ctx, false) }

// rebuildFor builds a new pool. onSwitch: only if no other handshake
// rebuilt it for the active issuer while this one waited for the lock.
func (t *clientTrust) rebuildFor(ctx context.Context, onSwitch bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	active := t.ca.IssuerID()
	if id, _ := t.builtFor.Load().(string); onSwitch && id == active {
		return nil
	}
	p := x509.NewCertPool()
	n := 1
	p.AddCert(t.ca.Root())
	for _, c := range t.ca.Chain() {
		p.AddCert(c)
		n++
	}
	issuers, err := t.ca.Issuers(ctx)
	if err != nil {
		return err
	}
	// Issuers scheduled or still serving (a rotation's overlap) too, so a
	// device enrolled under either can re-enroll across the switch.
	for _, is := range issuers {
		if is.IsRoot || is.Status == ca.StatusRetired {
			continue
		}
		if cert, err := x509.ParseCertificate(is.DER); err == nil {
			p.AddCert(cert)
			n++
		}
	}
	if err := addESTRoots(p, t.est); err != nil {
		return err
	}
	if old := t.count.Swap(int64(n)); old != 0 && old != int64(n) {
		t.log.Info("client-certificate trust changed", "issuing_anchors", n)
	}
	t.pool.Store(p)
	t.builtFor.Store(active)
	t.retryAt.Store(0)
	return nil
}

// run rebuilds the pool every interval until ctx ends; a failed rebuild
// keeps the previous pool.
func (t *clientTrust) run(ctx context.Context, every time.Duration) {
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			if err := t.rebuild(ctx); err != nil && ctx.Err() == nil {
				t.log.Warn("rebuilding the client-certificate trust failed; keeping the previous one", "err", err)
			}
		}
	}
}
