package ca

import (
	"context"
	"fmt"
	"time"
)

// Switching issuance to a rotated issuing CA while running.
//
// A rotation (ca/rotate.go) records the new issuer with a notBefore in the
// future; nothing tells the running replicas. Each CA therefore keeps the
// activation time of the next scheduled issuer it saw (issuing.next) and
// reloads from the store as soon as that time passes, on the first call
// that needs the active issuer, and [CA.RunIssuerWatch] re-reads the store
// on a ticker so an issuer scheduled after start (by the CLI or another
// replica) is noticed too. The state lives in the database; every replica
// reaches the same answer at the same activation time.
//
// The swap is an atomic pointer store of an immutable *issuing: an
// issuance holds the one it started with to the end, so a certificate is
// never built for one CA and signed by another.

// reloadBackoff keeps a failing reload (store or token down) from being
// retried on every issuance; the current issuer keeps issuing meanwhile.
const reloadBackoff = 10 * time.Second

// cur returns the issuing CA for an operation starting now, reloading
// first when a scheduled issuer's activation time has passed.
func (c *CA) cur() *issuing {
	a := c.active.Load()
	now := c.now()
	if a.next.IsZero() || now.Before(a.next) || now.UnixNano() < c.retryAt.Load() {
		return a
	}
	c.swapMu.Lock()
	if cur := c.active.Load(); cur != a {
		// Another goroutine reloaded while we waited.
		c.swapMu.Unlock()
		return cur
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.reloadLocked(ctx)
	c.swapMu.Unlock()
	if err != nil {
		c.log.Error("switching to the scheduled issuing CA failed; the current one keeps issuing", "issuer", a.issuer.ID, "err", err)
	}
	return c.active.Load()
}

// Reload re-reads the issuers from the store and, when another issuing CA
// is due (or the schedule changed), swaps it in. The previous issuer keeps
// its CRL and OCSP duty through the revocation service, which serves every
// non-retired issuer. On error the current issuer stays and the next
// reload is deferred by a short backoff.
func (c *CA) Reload(ctx context.Context) error {
	c.swapMu.Lock()
	defer c.swapMu.Unlock()
	return c.reloadLocked(ctx)
}

func (c *CA) reloadLocked(ctx context.Context) error {
	old := c.active.Load()
	a, err := c.load(ctx, old)
	if err != nil {
		c.retryAt.Store(c.now().Add(reloadBackoff).UnixNano())
		return err
	}
	c.retryAt.Store(0)
	c.active.Store(a)
	if a.issuer.ID != old.issuer.ID {
		if c.rev != nil {
			c.rev.addIssuer(&issuerKey{id: a.issuer.ID, cert: a.issuerCert, signer: a.signer})
		}
		c.log.Info("issuance switched to a new issuing CA", "from", old.issuer.ID, "to", a.issuer.ID, "activated", a.issuer.NotBefore)
	}
	return nil
}

// load picks the active issuing CA from the store and makes it ready to
// sign. When it is the one in old, old's key and lint issuer are reused
// and only the schedule is refreshed.
func (c *CA) load(ctx context.Context, old *issuing) (*issuing, error) {
	issuers, err := c.store.Issuers(ctx)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "cannot read the issuers from the store")
	}
	now := c.now()
	a, err := loadHierarchy(issuers, now)
	if err != nil {
		return nil, err
	}
	if old != nil && old.issuer.ID == a.issuer.ID && old.issuer.KeyURI == a.issuer.KeyURI {
		same := *old
		same.issuer, same.next = a.issuer, a.next
		return &same, nil
	}
	signer, err := c.keys.Signer(ctx, a.issuer.KeyURI)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, fmt.Sprintf("the key %s of issuing CA %s cannot be opened", redactURI(a.issuer.KeyURI), a.issuer.ID))
	}
	if !samePublicKey(a.issuerCert.PublicKey, signer.Public()) {
		return nil, Errorf(ErrConfig, "the key %s does not match the certificate of issuing CA %s", redactURI(a.issuer.KeyURI), a.issuer.ID)
	}
	a.signer = signer
	if a.sigAlg, err = signatureAlgorithmFor(a.issuerCert.PublicKey); err != nil {
		return nil, err
	}
	if a.lintIssuer, err = newLintIssuer(a.issuerCert); err != nil {
		return nil, Wrap(ErrInternal, err, "cannot prepare the lint issuer")
	}
	if now.After(a.issuerCert.NotAfter) {
		return nil, Errorf(ErrUnavailable, "issuing CA %s expired on %s", a.issuer.ID, a.issuerCert.NotAfter.UTC().Format(time.RFC3339))
	}
	return a, nil
}

// RunIssuerWatch re-reads the issuers every interval (default one minute)
// until ctx ends, so an issuer scheduled while this process runs is
// picked up; the switch itself happens at the activation time, in cur.
// Run it once per serving process.
func (c *CA) RunIssuerWatch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.Reload(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("re-reading the issuing CAs failed", "err", err)
			}
		}
	}
}

// ActiveIssuer returns the record of the issuing CA that new certificates
// get now.
func (c *CA) ActiveIssuer() (id string, activated time.Time, next time.Time) {
	a := c.cur()
	return a.issuer.ID, a.issuer.NotBefore, a.next
}

// SetEarlyMigration sets the key policy's early-migration period: after a
// new issuing CA activates, front ends suggest that certificates of the
// issuer it superseded renew within this period (ACME ARI), spread over
// it. Zero keeps the default (see EarlyMigration's callers).
func (c *CA) SetEarlyMigration(d time.Duration) { c.early.Store(int64(d)) }

// EarlyMigration returns the period set by SetEarlyMigration.
func (c *CA) EarlyMigration() time.Duration { return time.Duration(c.early.Load()) }
