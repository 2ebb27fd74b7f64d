package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// RevocationStore is the part of the inventory the revocation service
// needs on top of [Store]. *inventory.Store satisfies it. The contract of
// [Store] applies; in addition LatestCRL, GetOCSPResponse and KeyBlocked
// return errors wrapping inventory.ErrNotFound when there is nothing
// stored, and TryLock never blocks.
type RevocationStore interface {
	NextCRLNumber(ctx context.Context, issuerID string) (int64, error)
	PutCRL(ctx context.Context, c *inventory.CRL) (bool, error)
	LatestCRL(ctx context.Context, issuerID string, shard int, delta bool) (*inventory.CRL, error)
	RevokedCertificates(ctx context.Context, f inventory.RevokedFilter, fn func(inventory.RevokedEntry) error) error
	PutOCSPResponse(ctx context.Context, r *inventory.OCSPResponse) error
	GetOCSPResponse(ctx context.Context, issuerID, serial string) (*inventory.OCSPResponse, error)
	OCSPDue(ctx context.Context, issuerID string, refreshBefore, now time.Time, limit int) ([]inventory.Certificate, error)
	KeyBlocked(ctx context.Context, pubkeySHA256 string) (*inventory.BlockedKey, error)
	BlockKey(ctx context.Context, k inventory.BlockedKey, ev inventory.Event) error
	UnblockKey(ctx context.Context, pubkeySHA256 string, ev inventory.Event) error
	TryLock(ctx context.Context, name string) (release func(), ok bool, err error)
	// The durable "CRL needed" marks that RevokeCertificate writes in
	// the revocation's transaction (see inventory.CRLDirty).
	// CRLDirtyMark returns ErrNotFound when the issuer is clean;
	// ClearCRLDirty is a compare-and-clear on the mark's generation and
	// is called only under the issuer's CRL lock.
	CRLDirtyMarks(ctx context.Context) ([]inventory.CRLDirty, error)
	CRLDirtyMark(ctx context.Context, issuerID string) (*inventory.CRLDirty, error)
	ClearCRLDirty(ctx context.Context, issuerID string, generation int64) (bool, error)
}

// RevocationConfig tunes CRLs and OCSP. Zero fields take the defaults below.
type RevocationConfig struct {
	// CRLValidity is nextUpdate − thisUpdate. CRLs are re-signed at half
	// of it, so a relying party's cached copy is never older than that.
	CRLValidity time.Duration
	// CRLDelay batches revocations: the first one marks the issuer dirty,
	// and one CRL is signed this long later for everything revoked meanwhile.
	// The mark is durable (written with the revocation): if the process
	// dies first, a replica's worker signs the CRL at its start or on its
	// next sweep (SweepEvery) once the mark is CRLDelay old.
	CRLDelay time.Duration
	// CRLShards > 1 partitions each issuer's certificates over that many
	// CRLs (serial mod N), each certificate naming its shard's URL in its
	// CRL Distribution Point. The full CRL is published as well. Changing
	// it strands the certificates already issued: set it once.
	CRLShards int
	// DeltaCRL publishes a delta CRL at /crl/{issuer}-delta.crl; a burst of
	// revocations then re-signs only the delta, and the full CRL (which
	// points at it through Freshest CRL) follows on its schedule.
	DeltaCRL bool
	// OCSPValidity is nextUpdate − thisUpdate of OCSP responses; they are
	// refreshed at half of it.
	OCSPValidity time.Duration
	// DelegatedResponder signs OCSP for the active issuing CA with a
	// short-lived responder certificate (id-kp-OCSPSigning, ocsp-nocheck)
	// whose key lives in memory, instead of the CA key. Each replica makes
	// its own and rotates it at half its life.
	DelegatedResponder bool
	// ResponderValidity is the delegated responder certificate's lifetime.
	ResponderValidity time.Duration
	// SweepEvery is how often the background worker checks CRL ages and
	// refreshes OCSP responses.
	SweepEvery time.Duration
}

// Revocation defaults.
const (
	DefaultCRLValidity       = 24 * time.Hour
	DefaultCRLDelay          = 2 * time.Second
	DefaultOCSPValidity      = 24 * time.Hour
	DefaultResponderValidity = 7 * day
	DefaultSweepEvery        = time.Minute
)

func (r RevocationConfig) withDefaults() RevocationConfig {
	def := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&r.CRLValidity, DefaultCRLValidity)
	def(&r.CRLDelay, DefaultCRLDelay)
	def(&r.OCSPValidity, DefaultOCSPValidity)
	def(&r.ResponderValidity, DefaultResponderValidity)
	def(&r.SweepEvery, DefaultSweepEvery)
	if r.CRLShards < 1 {
		r.CRLShards = 1
	}
	return r
}

// RevocationStats counts signatures, for metrics and for tests proving
// that a burst of revocations costs one CRL signature, not one each.
type RevocationStats struct {
	CRLsSigned       int64 // CRLs signed (full, shard and delta)
	OCSPPreSigned    int64 // responses signed ahead of requests
	OCSPLiveSigned   int64 // responses signed for a request (nonce, non-SHA-1 CertID)
	ResponderRotated int64 // delegated responder certificates issued
}

// revoker is the revocation service inside a CA: CRL builder, OCSP
// signer and the background worker. It is nil when Options.RevocationStore
// is nil (unit tests of issuance alone).
type revoker struct {
	ca    *CA
	store RevocationStore
	cfg   RevocationConfig
	log   *slog.Logger

	mu      sync.Mutex
	issuers map[string]*issuerKey // by issuer ID, loaded lazily
	roots   map[string]*issuerKey // online roots: they sign CRLs only, never OCSP
	loaded  time.Time             // when issuers was last refreshed
	dirty   map[string]bool       // issuers whose CRL must be re-signed
	resp    *responder            // delegated responder of the active issuer

	kick chan struct{} // wakes the worker when an issuer becomes dirty

	crls, pre, live, rotated atomic.Int64
}

// issuerKey is an issuer able to sign: its certificate and key.
type issuerKey struct {
	id     string
	cert   *x509.Certificate
	signer crypto.Signer // nil when the key is offline (roots)
	root   bool          // a root signs only its CRL (see crlIssuerKeys)
}

func newRevoker(c *CA, st RevocationStore, cfg RevocationConfig) *revoker {
	r := &revoker{ca: c, store: st, cfg: cfg.withDefaults(), log: c.log,
		issuers: map[string]*issuerKey{}, roots: map[string]*issuerKey{}, dirty: map[string]bool{}, kick: make(chan struct{}, 1)}
	a := c.active.Load()
	r.issuers[a.issuer.ID] = &issuerKey{id: a.issuer.ID, cert: a.issuerCert, signer: a.signer}
	return r
}

// addIssuer makes an issuer that became active while running sign CRLs
// and OCSP at once, without waiting for the next refresh.
func (r *revoker) addIssuer(ik *issuerKey) {
	r.mu.Lock()
	r.issuers[ik.id] = ik
	r.mu.Unlock()
}

// RevocationStats returns the signature counters of this process.
func (c *CA) RevocationStats() RevocationStats {
	if c.rev == nil {
		return RevocationStats{}
	}
	return RevocationStats{CRLsSigned: c.rev.crls.Load(), OCSPPreSigned: c.rev.pre.Load(),
		OCSPLiveSigned: c.rev.live.Load(), ResponderRotated: c.rev.rotated.Load()}
}

// issuerKeys returns every issuing CA whose key is online, refreshing from
// the store at most once a minute (a rotation adds issuers while we run).
// Roots are loaded in the same pass but kept apart: they sign their CRL
// (crlIssuerKeys) and never OCSP, so a flood of OCSP requests naming the
// root cannot make the root key sign.
func (r *revoker) issuerKeys(ctx context.Context, refresh bool) ([]*issuerKey, error) {
	r.mu.Lock()
	stale := refresh && time.Since(r.loaded) > time.Minute || r.loaded.IsZero()
	r.mu.Unlock()
	if stale {
		all, err := r.ca.store.Issuers(ctx)
		if err != nil {
			return nil, Wrap(ErrUnavailable, err, "cannot read the issuers from the store")
		}
		for _, is := range all {
			// A retired issuer's certificates have all expired (see
			// RetireIssuers): it has no CRL or OCSP duty left, and its key
			// refuses to sign anyway.
			if is.KeyURI == "" || is.Status == StatusRetired {
				continue
			}
			r.mu.Lock()
			_, have := r.issuers[is.ID]
			_, haveRoot := r.roots[is.ID]
			r.mu.Unlock()
			if have || haveRoot {
				continue
			}
			cert, err := x509.ParseCertificate(is.DER)
			if err != nil {
				r.log.Warn("issuer certificate does not parse; no CRL or OCSP for it", "issuer", is.ID, "err", err)
				continue
			}
			signer, err := r.ca.keys.Signer(ctx, is.KeyURI)
			if err != nil {
				if is.IsRoot {
					// The root key may live in a separate backend
					// (keys.root_backend) this process does not open: the
					// root's CRL is then the one stored by init, rotate or
					// `mica crl generate` run where the key is.
					r.log.Debug("root key not available here; serving its stored CRL", "issuer", is.ID)
					r.mu.Lock()
					r.roots[is.ID] = &issuerKey{id: is.ID, cert: cert, root: true}
					r.mu.Unlock()
					continue
				}
				r.log.Warn("issuer key cannot be opened; no CRL or OCSP for it", "issuer", is.ID, "key", redactURI(is.KeyURI), "err", err)
				continue
			}
			r.mu.Lock()
			if is.IsRoot {
				r.roots[is.ID] = &issuerKey{id: is.ID, cert: cert, signer: signer, root: true}
			} else {
				r.issuers[is.ID] = &issuerKey{id: is.ID, cert: cert, signer: signer}
			}
			r.mu.Unlock()
		}
		r.mu.Lock()
		r.loaded = time.Now()
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*issuerKey, 0, len(r.issuers))
	for _, ik := range r.issuers {
		out = append(out, ik)
	}
	return out, nil
}

// crlIssuerKeys is issuerKeys plus the online roots: every issuer whose
// CRL this process signs.
func (r *revoker) crlIssuerKeys(ctx context.Context, refresh bool) ([]*issuerKey, error) {
	iks, err := r.issuerKeys(ctx, refresh)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ik := range r.roots {
		if ik.signer != nil {
			iks = append(iks, ik)
		}
	}
	return iks, nil
}

// issuerKey finds an issuing CA by ID (roots when withRoots).
func (r *revoker) issuerKey(ctx context.Context, id string, withRoots bool) (*issuerKey, error) {
	list := r.issuerKeys
	if withRoots {
		list = r.crlIssuerKeys
	}
	for _, refresh := range []bool{false, true} {
		iks, err := list(ctx, refresh)
		if err != nil {
			return nil, err
		}
		for _, ik := range iks {
			if ik.id == id {
				return ik, nil
			}
		}
	}
	return nil, Errorf(ErrNotFound, "issuer %s is unknown or its key is offline", id)
}

// certIssued pre-signs the "good" response of a new certificate. It runs
// after the commit, so a failure cannot un-issue anything: it is logged,
// and the refresh sweep or the first request signs the response instead.
func (r *revoker) certIssued(ctx context.Context, rec *inventory.Certificate) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := r.presign(ctx, rec); err != nil {
		r.log.Warn("pre-signing the OCSP response failed; it will be signed later", "issuer", rec.IssuerID, "serial", inventory.FormatSerial(rec.Serial), "err", err)
	}
}

// certRevoked pre-signs the "revoked" response at once (OCSP then says
// revoked before the call returns) and schedules the CRL. Neither needs
// to survive a crash here: the store committed the dirty CRL mark with
// the revocation (picked up by loadDirty and sweep), and a pre-signed
// "good" response of a revoked certificate is due (inventory.OCSPDue) at
// the next sweep.
func (r *revoker) certRevoked(ctx context.Context, rec *inventory.Certificate) {
	r.certIssued(ctx, rec)
	r.markDirty(rec.IssuerID)
}

func (r *revoker) markDirty(issuerID string) {
	r.mu.Lock()
	r.dirty[issuerID] = true
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// RunRevocation runs the revocation worker until ctx ends: it signs the
// CRLs of issuers with new revocations CRLDelay after the first one (so a
// burst costs one signature), re-signs CRLs at half their validity, and
// refreshes OCSP responses before they go stale. Every job runs under a
// store lock, so with several replicas exactly one does each. Run it once
// per process that serves; the CLI calls [CA.GenerateCRLs] instead.
func (c *CA) RunRevocation(ctx context.Context) {
	if c.rev == nil {
		return
	}
	r := c.rev
	r.loadDirty(ctx)
	r.sweep(ctx)
	tick := time.NewTicker(r.cfg.SweepEvery)
	defer tick.Stop()
	var batch <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			if batch == nil {
				batch = r.batchTimer(r.cfg.CRLDelay)
			}
		case <-batch:
			batch = nil
			r.flush(ctx)
		case <-tick.C:
			r.sweep(ctx)
		}
	}
}

// loadDirty takes over the durable dirty marks at start (left by this
// process before a crash, or by a replica that died): they are signed
// one CRLDelay from now, batched with whatever is revoked meanwhile; the
// sweep signs those already CRLDelay old at once.
func (r *revoker) loadDirty(ctx context.Context) {
	marks, err := r.store.CRLDirtyMarks(ctx)
	if err != nil {
		r.log.Error("reading the dirty CRL marks failed; the sweep retries", "err", err)
		return
	}
	for _, m := range marks {
		r.markDirty(m.IssuerID)
	}
}

// flush signs the CRLs of every dirty issuer that still has a durable
// mark (another replica's CRL may have covered it). An issuer whose lock
// is held elsewhere stays dirty and is retried after another delay: the
// holder may have read the revocations before ours committed.
func (r *revoker) flush(ctx context.Context) {
	r.mu.Lock()
	ids := make([]string, 0, len(r.dirty))
	for id := range r.dirty {
		ids = append(ids, id)
	}
	clear(r.dirty)
	r.mu.Unlock()
	for _, id := range ids {
		err := r.generate(ctx, id, r.cfg.DeltaCRL, true)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if KindOf(err) == ErrNotFound {
			// An issuer whose key is not online here (an offline root)
			// cannot sign; retrying every CRLDelay would only spin. Its
			// durable mark stays for a process that holds the key.
			r.log.Warn("CRL not signed: the issuer's key is not online in this process", "issuer", id, "err", err)
			continue
		}
		if !errors.Is(err, errJobBusy) {
			r.log.Error("CRL generation failed; retrying", "issuer", id, "err", err)
		}
		r.markDirty(id)
	}
}

// sweep re-signs CRLs past half their validity or with a durable dirty
// mark at least CRLDelay old (a revocation whose process died before its
// CRL, or whose batch is late), and refreshes OCSP.
func (r *revoker) sweep(ctx context.Context) {
	iks, err := r.crlIssuerKeys(ctx, true)
	if err != nil {
		r.log.Error("revocation sweep: listing issuers failed", "err", err)
		return
	}
	now := r.ca.now()
	dirty := map[string]bool{}
	if marks, err := r.store.CRLDirtyMarks(ctx); err != nil {
		r.log.Error("revocation sweep: reading the dirty CRL marks failed", "err", err)
	} else {
		for _, m := range marks {
			// A younger mark belongs to a live batch, which signs it.
			dirty[m.IssuerID] = !now.Before(m.Since.Add(r.cfg.CRLDelay))
		}
	}
	r.flushResponder(ctx, r.currentResponder())
	for _, ik := range iks {
		if ctx.Err() != nil {
			return
		}
		crl, err := r.store.LatestCRL(ctx, ik.id, 0, false)
		switch {
		case errors.Is(err, inventory.ErrNotFound):
		case err != nil:
			r.log.Error("revocation sweep: reading CRL failed", "issuer", ik.id, "err", err)
			continue
		case now.Before(crl.ThisUpdate.Add(crl.NextUpdate.Sub(crl.ThisUpdate)/2)) && !dirty[ik.id]:
			crl = nil // fresh and clean
		}
		if err != nil || crl != nil {
			if err := r.generate(ctx, ik.id, false, false); err != nil && !errors.Is(err, errJobBusy) {
				r.log.Error("scheduled CRL generation failed", "issuer", ik.id, "err", err)
			}
		}
		if ik.root {
			continue // roots answer no OCSP
		}
		if err := r.refreshOCSP(ctx, ik); err != nil && !errors.Is(err, errJobBusy) {
			r.log.Error("OCSP refresh failed", "issuer", ik.id, "err", err)
		}
	}
}

var errJobBusy = errors.New("another replica is running this job")

// withLock runs fn holding the store lock name, or returns errJobBusy.
func (r *revoker) withLock(ctx context.Context, name string, fn func() error) error {
	release, ok, err := r.store.TryLock(ctx, name)
	if err != nil {
		return Wrap(ErrUnavailable, err, fmt.Sprintf("taking the %s lock failed", name))
	}
	if !ok {
		return errJobBusy
	}
	defer release()
	return fn()
}

// checkBlockedKey is the last part of step 1: a public key on the
// blocklist (see [CA.BlockKey], `mica incident revoke`) is refused with
// ErrPolicy. It is here, in Issue, so every front end — CLI, ACME, EST,
// web — inherits it without a check of its own.
func (c *CA) checkBlockedKey(ctx context.Context, chk *checked) error {
	if c.rev == nil {
		return nil
	}
	h := spkiSHA256(chk.csr.RawSubjectPublicKeyInfo)
	k, err := c.rev.store.KeyBlocked(ctx, h)
	switch {
	case errors.Is(err, inventory.ErrNotFound):
		return nil
	case err != nil:
		return Wrap(ErrUnavailable, err, "checking the public key blocklist failed")
	}
	why := ""
	if k.Reason != "" {
		why = ": " + k.Reason
	}
	return Errorf(ErrPolicy, "public key is blocked (compromised) and can never be certified again%s; generate a new key (key SHA-256 %s)", why, h)
}
