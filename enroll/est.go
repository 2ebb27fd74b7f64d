package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// Config is the `est:` section of mica.yaml.
type Config struct {
	// Default names the label served at the unlabelled path; empty means
	// the unlabelled path is not served.
	Default string           `yaml:"default,omitempty"`
	Labels  map[string]Label `yaml:"labels,omitempty"`
	// TrustedProxies are CIDRs of TLS-terminating proxies; only requests
	// from them may carry a client certificate in ClientCertHeader (PEM,
	// URL-escaped as nginx's $ssl_client_escaped_cert, or base64 DER).
	TrustedProxies   []string `yaml:"trusted_proxies,omitempty"`
	ClientCertHeader string   `yaml:"client_cert_header,omitempty"`
	// RateLimit is how many enrollment requests one client address may make
	// per RateWindow; 0 turns the limit off.
	RateLimit  int           `yaml:"rate_limit,omitempty"`
	RateWindow time.Duration `yaml:"rate_window,omitempty"`
	// CredentialRateLimit is how many enrollment requests one credential
	// (client certificate, IDevID, token) may make under one label per
	// CredentialRateWindow (0: one hour), from any address; 0 turns the
	// limit off.
	CredentialRateLimit  int           `yaml:"credential_rate_limit,omitempty"`
	CredentialRateWindow time.Duration `yaml:"credential_rate_window,omitempty"`
}

// Label is one EST label: a profile plus who may enroll under it.
type Label struct {
	Profile string `yaml:"profile"`
	// Tokens accepts one-time enrollment tokens over HTTP Basic.
	Tokens bool `yaml:"tokens,omitempty"`
	// ClientCerts accepts TLS client certificates issued by MICA, and by the
	// roots in TrustedRoots (PEM files: manufacturer IDevID roots).
	ClientCerts  bool     `yaml:"client_certs,omitempty"`
	TrustedRoots []string `yaml:"trusted_roots,omitempty"`
	// TLSUnique requires RFC 7030 section 3.5 proof of possession: the CSR's
	// challengePassword is base64(tls-unique) of the connection (TLS 1.2).
	TLSUnique bool `yaml:"tls_unique,omitempty"`
	// IDevIDIdentity is the identity a certificate from TrustedRoots
	// authorises (see [IDevIDSubject] and the others); empty means
	// IDevIDSubject.
	IDevIDIdentity string `yaml:"idevid_identity,omitempty"`
	// RenewProfiles lists the profiles, besides Profile, whose certificates
	// may re-enroll under this label; the renewal is issued under Profile.
	RenewProfiles []string `yaml:"renew_profiles,omitempty"`
	// Approval holds every enrollment and re-enrollment for an operator
	// (`mica est approve`). It cannot be combined with ServerKeyGen.
	Approval bool `yaml:"approval,omitempty"`
	// ServerKeyGen enables serverkeygen with a pool of pre-generated keys.
	ServerKeyGen *PoolConfig `yaml:"serverkeygen,omitempty"`
}

// What an IDevID (a certificate from a label's trusted_roots) authorises.
const (
	// IDevIDSubject: exactly the IDevID's own subject and SANs.
	IDevIDSubject = "subject"
	// IDevIDSerialNumber: a certificate whose subject is only a common
	// name equal to the IDevID's serialNumber attribute, without SANs.
	IDevIDSerialNumber = "serial_number"
	// IDevIDApproval: the names in the CSR, once an operator approves
	// them; the label must have approval.
	IDevIDApproval = "approval"
	// IDevIDToken: the names a one-time token binds; the device presents
	// the IDevID and the token together, and the label must accept tokens.
	IDevIDToken = "token"
)

// PoolConfig sizes a label's serverkeygen key pool.
type PoolConfig struct {
	KeyType string `yaml:"key_type"`  // hsm.KeyType name, e.g. RSA-2048
	Size    int    `yaml:"pool_size"` // 0 disables pre-generation: keys are made on demand
}

// Validate checks c against the profiles the CA knows.
func (c *Config) Validate(profileExists func(string) bool) error {
	if c.Default != "" {
		if _, ok := c.Labels[c.Default]; !ok {
			return fmt.Errorf("est.default %q is not a label", c.Default)
		}
	}
	for name, l := range c.Labels {
		if _, isOp := opRules[name]; name == "" || isOp {
			return fmt.Errorf("est.labels: %q cannot be a label name", name)
		}
		if !profileExists(l.Profile) {
			return fmt.Errorf("est.labels.%s: unknown profile %q", name, l.Profile)
		}
		if err := l.validateRules(name, profileExists); err != nil {
			return err
		}
		if p := l.ServerKeyGen; p != nil {
			if _, err := hsm.ParseKeyType(p.KeyType); err != nil {
				return fmt.Errorf("est.labels.%s.serverkeygen: %w", name, err)
			}
			if p.Size < 0 {
				return fmt.Errorf("est.labels.%s.serverkeygen: pool_size must not be negative", name)
			}
		}
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			return fmt.Errorf("est.trusted_proxies: %w", err)
		}
	}
	if c.RateLimit < 0 {
		return errors.New("est.rate_limit must not be negative")
	}
	return nil
}

// Issuer is the part of the CA the EST server uses. *ca.CA satisfies it;
// it is safe for concurrent use and returns errors of the ca vocabulary.
type Issuer interface {
	Issue(ctx context.Context, req ca.Request) (*ca.Issued, error)
	Chain() []*x509.Certificate
	Root() *x509.Certificate
	Issuers(ctx context.Context) ([]inventory.Issuer, error)
	Profile(name string) (ca.Profile, bool)
}

// Store is the part of the inventory the EST server uses; *inventory.Store
// satisfies it. Methods are safe for concurrent use across replicas and
// wrap inventory.ErrNotFound / ErrConflict as documented there.
type Store interface {
	UseESTToken(ctx context.Context, id, label, secretSHA256, usedBy string, now time.Time) (*inventory.ESTToken, error)
	ReleaseESTToken(ctx context.Context, id string) error
	HitESTRate(ctx context.Context, client string, window time.Duration, now time.Time) (int64, time.Time, error)
	Certificate(ctx context.Context, issuerID, serial string) (*inventory.Certificate, error)
	PutESTPoolKeys(ctx context.Context, label, keyType string, sealed [][]byte) error
	ClaimESTPoolKey(ctx context.Context, label, keyType string) ([]byte, error)
	CountESTPoolKeys(ctx context.Context, label, keyType string) (int, error)
	AppendEvent(ctx context.Context, e inventory.Event) (inventory.Event, error)
	pendingStore
}

// Options configure a Server. CA, Store and Keys are required.
type Options struct {
	CA     Issuer
	Store  Store
	Keys   hsm.Backend // holds the pool sealing key
	Config Config
	// Profiles lists the profile names the CA knows, for Validate.
	Profiles []string
	Logger   *slog.Logger
	Now      func() time.Time
	Registry prometheus.Registerer // nil: metrics are kept but not exported
	Denials  DenialRecorder        // summarises unauthenticated refusals (denials.go); nil: one event each
}

// Server is the EST front end. It implements server.Mounter and
// server.Describer.
type Server struct {
	ca      Issuer
	store   Store
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	labels  map[string]*label
	proxies []netip.Prefix
	m       *metrics
	sealer  *sealer
	denials DenialRecorder
}

type label struct {
	name string
	Label
	roots *x509.CertPool // extra trusted roots, nil when none
	pool  *keyPool       // nil without serverkeygen
}

// New builds the server. It reads trusted-root files, opens the sealing
// key when a label has a key pool, and starts the pools' refill loops,
// which run until ctx ends.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.CA == nil || opts.Store == nil {
		return nil, errors.New("enroll: CA and Store are required")
	}
	if err := opts.Config.Validate(func(p string) bool { return slices.Contains(opts.Profiles, p) }); err != nil {
		return nil, fmt.Errorf("%w: %v", ca.ErrConfig, err)
	}
	s := &Server{ca: opts.CA, store: opts.Store, cfg: opts.Config, log: opts.Logger, now: opts.Now, labels: map[string]*label{}, denials: opts.Denials}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.RateWindow <= 0 {
		s.cfg.RateWindow = time.Minute
	}
	var err error
	if s.m, err = newMetrics(opts.Registry); err != nil {
		return nil, err
	}
	for _, p := range s.cfg.TrustedProxies {
		s.proxies = append(s.proxies, netip.MustParsePrefix(p))
	}
	names := make([]string, 0, len(s.cfg.Labels))
	for n := range s.cfg.Labels {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := &label{name: n, Label: s.cfg.Labels[n]}
		if len(l.TrustedRoots) > 0 {
			l.roots = x509.NewCertPool()
			for _, f := range l.TrustedRoots {
				pemBytes, err := os.ReadFile(f)
				if err != nil {
					return nil, fmt.Errorf("%w: est.labels.%s.trusted_roots: %v", ca.ErrConfig, n, err)
				}
				if !l.roots.AppendCertsFromPEM(pemBytes) {
					return nil, fmt.Errorf("%w: est.labels.%s.trusted_roots: %s holds no PEM certificate", ca.ErrConfig, n, f)
				}
			}
		}
		if l.ServerKeyGen != nil {
			if s.sealer == nil {
				if opts.Keys == nil {
					return nil, fmt.Errorf("%w: est.labels.%s.serverkeygen needs a key backend", ca.ErrConfig, n)
				}
				if s.sealer, err = openSealer(ctx, opts.Keys); err != nil {
					return nil, err
				}
			}
			l.pool = newKeyPool(s, l)
			// Said at start so an operator with libest devices learns
			// it from the log, not from a device in the field.
			s.log.Info("EST serverkeygen", "label", n, "delivers", l.ServerKeyGen.Delivers())
		}
		s.labels[n] = l
	}
	for _, n := range names {
		if p := s.labels[n].pool; p != nil {
			go p.run(ctx)
		}
	}
	return s, nil
}

// Mount registers the EST routes on the HTTPS router: every operation of
// the rule table (rules.go), at the default label's path and under each
// label.
func (s *Server) Mount(https, _ chi.Router) {
	handlers := map[string]labelHandler{"cacerts": s.cacerts, "csrattrs": s.csrattrs,
		"simpleenroll": s.simpleenroll, "simplereenroll": s.simplereenroll, "serverkeygen": s.serverkeygen}
	https.Route("/.well-known/est", func(r chi.Router) {
		for _, prefix := range []string{"", "/{label}"} {
			for op, rule := range opRules {
				r.Method(rule.method, prefix+"/"+op, s.withLabel(handlers[op]))
			}
		}
	})
}

// Describe lists the EST base URLs for `mica dev`'s banner.
func (s *Server) Describe(httpsBase, _ string) []string {
	var out []string
	if s.cfg.Default != "" {
		out = append(out, fmt.Sprintf("EST (label %s)   %s/.well-known/est/", s.cfg.Default, httpsBase))
	}
	names := make([]string, 0, len(s.labels))
	for n := range s.labels {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, fmt.Sprintf("EST label %s   %s/.well-known/est/%s/", n, httpsBase, n))
	}
	return out
}

type labelHandler func(w http.ResponseWriter, r *http.Request, l *label)

// withLabel resolves the {label} path segment (or the default label) and
// answers 404 for an unknown one.
func (s *Server) withLabel(h labelHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "label")
		if name == "" {
			name = s.cfg.Default
		}
		l, ok := s.labels[name]
		if !ok {
			http.Error(w, "unknown EST label", http.StatusNotFound)
			return
		}
		h(w, r, l)
	}
}

// allow spends one unit of the client's rate budget; false means the
// caller has already been answered 429.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, op string) bool {
	if s.cfg.RateLimit <= 0 {
		return true
	}
	src := s.sourceAddr(r)
	hits, until, err := s.store.HitESTRate(r.Context(), src, s.cfg.RateWindow, s.now())
	if err != nil {
		s.fail(w, r, op, "", ca.Wrap(ca.ErrUnavailable, err, "rate limiter unavailable"))
		return false
	}
	if hits > int64(s.cfg.RateLimit) {
		retry := max(1, int(until.Sub(s.now()).Round(time.Second)/time.Second))
		s.fail(w, r, op, "", &retryError{ca.Errorf(ca.ErrRateLimited, "too many EST requests from %s; retry in %d s", src, retry), retry})
		return false
	}
	return true
}

// sourceAddr is the client's IP without port: the peer's, or, for a
// request from a trusted proxy, the last address the proxy appended to
// X-Forwarded-For (earlier entries are the client's own claims). Rate
// limits and audit events key on it.
func (s *Server) sourceAddr(r *http.Request) string {
	peer := r.RemoteAddr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		peer = ap.Addr().Unmap().String()
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 && s.fromTrustedProxy(r) {
		all := strings.Split(strings.Join(xff, ","), ",")
		if a, err := netip.ParseAddr(strings.TrimSpace(all[len(all)-1])); err == nil {
			return a.Unmap().String()
		}
	}
	return peer
}
