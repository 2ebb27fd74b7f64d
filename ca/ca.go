package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// Issuer statuses as stored in inventory.Issuer.Status.
const (
	StatusActive  = "active"
	StatusRetired = "retired"
)

// CA is the issuance engine. It is safe for concurrent use. The active
// issuing CA is not fixed at New: it is re-read from the store when a
// scheduled issuer's activation time passes and on [CA.RunIssuerWatch]'s
// ticker, and swapped atomically (see active.go), so a rotation takes
// effect on every running replica without a restart.
type CA struct {
	store    Store
	keys     hsm.Backend
	log      *slog.Logger
	now      func() time.Time
	urls     URLs
	profiles map[string]*policy
	names    []string // sorted profile names
	onRevoke func(context.Context, *inventory.Certificate)
	rev      *revoker  // nil without Options.RevocationStore
	crashAt  string    // MICA_TEST_CRASH_AT, test-only
	hooks    testHooks // test-only

	active  atomic.Pointer[issuing] // the issuing CA new certificates get; never nil after New
	swapMu  sync.Mutex              // serialises reloads
	retryAt atomic.Int64            // unix nanos before which a failed reload is not retried
	early   atomic.Int64            // key_policy.early_migration, nanoseconds (see SetEarlyMigration)
}

// issuing is one issuing CA ready to sign. It is immutable once published
// in CA.active: an issuance that started with it finishes with it, even if
// a rotation swaps another in meanwhile.
type issuing struct {
	issuer     inventory.Issuer    // the active issuing CA's record
	issuerCert *x509.Certificate   // its certificate
	chain      []*x509.Certificate // issuing CA first, root excluded
	root       *x509.Certificate
	signer     crypto.Signer
	sigAlg     x509.SignatureAlgorithm
	lintIssuer *lintIssuer
	// next is the activation time of the earliest scheduled issuer after
	// this one (zero: none scheduled). Once it passes, the next call to
	// cur reloads.
	next time.Time
}

// New loads the issuers from the store, picks the active issuing CA (status
// active, not a root, latest NotBefore that is not in the future), opens its key in opts.Keys and
// validates the profiles. A problem with the configuration is ErrConfig
// naming what is wrong; a key or store that cannot be reached is
// ErrUnavailable.
func New(ctx context.Context, opts Options) (*CA, error) {
	if opts.Store == nil {
		return nil, Errorf(ErrConfig, "no store configured")
	}
	if opts.Keys == nil {
		return nil, Errorf(ErrConfig, "no key backend configured")
	}
	profiles, err := compileProfiles(opts.Profiles)
	if err != nil {
		return nil, err
	}
	c := &CA{
		store:    opts.Store,
		keys:     opts.Keys,
		log:      opts.Logger,
		now:      opts.Now,
		urls:     opts.URLs,
		profiles: profiles,
		onRevoke: opts.OnRevoke,
		crashAt:  os.Getenv(crashEnv),
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	for n := range profiles {
		c.names = append(c.names, n)
	}
	slices.Sort(c.names)

	a, err := c.load(ctx, nil)
	if err != nil {
		return nil, err
	}
	c.active.Store(a)
	if opts.RevocationStore != nil {
		c.rev = newRevoker(c, opts.RevocationStore, opts.Revocation)
	}
	return c, nil
}

// loadHierarchy picks the active issuing CA at now and walks its parents
// to the root, checking every signature on the way. It does not open the
// key (see load).
func loadHierarchy(issuers []inventory.Issuer, now time.Time) (*issuing, error) {
	c := &issuing{}
	byID := make(map[string]inventory.Issuer, len(issuers))
	var active *inventory.Issuer
	for i := range issuers {
		is := issuers[i]
		byID[is.ID] = is
		if is.IsRoot || is.Status != StatusActive || is.KeyURI == "" {
			continue
		}
		// An issuer whose certificate starts in the future is a scheduled
		// rotation (ca/rotate.go): it takes over once it has started, and
		// the soonest one sets when to look again.
		if is.NotBefore.After(now) {
			if c.next.IsZero() || is.NotBefore.Before(c.next) {
				c.next = is.NotBefore
			}
			continue
		}
		if active == nil || newerIssuer(is, *active) {
			active = &issuers[i]
		}
	}
	if active == nil {
		return nil, Errorf(ErrConfig, "the store holds no active issuing CA with an online key; run `mica init` first")
	}
	c.issuer = *active

	cur := *active
	var child *x509.Certificate
	childID := ""
	for depth := 0; ; depth++ {
		if depth > 5 {
			return nil, Errorf(ErrConfig, "issuer %s: the chain to the root is longer than 5 (a loop?)", active.ID)
		}
		cert, err := x509.ParseCertificate(cur.DER)
		if err != nil {
			return nil, Wrap(ErrConfig, err, fmt.Sprintf("issuer %s: its stored certificate does not parse", cur.ID))
		}
		if child != nil {
			if err := child.CheckSignatureFrom(cert); err != nil {
				return nil, Wrap(ErrConfig, err, fmt.Sprintf("issuer %s: its certificate is not signed by its parent %s", childID, cur.ID))
			}
		}
		if cur.IsRoot {
			c.root = cert
			break
		}
		c.chain = append(c.chain, cert)
		if cur.ParentID == "" {
			return nil, Errorf(ErrConfig, "issuer %s has no parent and is not a root", cur.ID)
		}
		parent, ok := byID[cur.ParentID]
		if !ok {
			return nil, Errorf(ErrConfig, "issuer %s names parent %s, which is not in the store", cur.ID, cur.ParentID)
		}
		child, childID, cur = cert, cur.ID, parent
	}
	c.issuerCert = c.chain[0]
	return c, nil
}

// IssuerID is the ID of the active issuing CA, as used in URLs.
func (c *CA) IssuerID() string { return c.cur().issuer.ID }

// Chain returns the issuing CA certificate followed by any further
// intermediates, excluding the root: what a server sends after its leaf.
func (c *CA) Chain() []*x509.Certificate { return slices.Clone(c.cur().chain) }

// Root returns the root certificate at the top of the active chain.
func (c *CA) Root() *x509.Certificate { return c.cur().root }

// Issuers lists every issuer in the store, fresh.
func (c *CA) Issuers(ctx context.Context) ([]inventory.Issuer, error) {
	is, err := c.store.Issuers(ctx)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "cannot read the issuers from the store")
	}
	return is, nil
}

// Profile returns the named profile with defaults applied.
func (c *CA) Profile(name string) (Profile, bool) {
	p, ok := c.profiles[name]
	if !ok {
		return Profile{}, false
	}
	out := p.Profile
	out.KeyTypes = slices.Clone(p.keyTypes)
	return out, true
}

// ProfileNames lists the profile names in order.
func (c *CA) ProfileNames() []string { return slices.Clone(c.names) }

// redactURI drops anything after "?" and any "pin-" attribute from a key URI
// before it goes into a message: key URIs should not carry PINs, but a
// misconfigured one must not leak through an error.
func redactURI(uri string) string {
	base, _, _ := strings.Cut(uri, "?")
	parts := strings.Split(base, ";")
	kept := parts[:0]
	for _, p := range parts {
		if k, _, _ := strings.Cut(p, "="); strings.HasPrefix(strings.ToLower(strings.TrimSpace(k)), "pin") {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, ";")
}
