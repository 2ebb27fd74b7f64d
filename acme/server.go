package acme

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// CA is what the ACME server needs from the issuance engine. *ca.CA
// satisfies it. Methods are called concurrently and honour ctx; errors
// carry the ca package's vocabulary.
type CA interface {
	Issue(ctx context.Context, req ca.Request) (*ca.Issued, error)
	Revoke(ctx context.Context, rr ca.RevokeRequest) (*inventory.Certificate, error)
	Profile(name string) (ca.Profile, bool)
}

// Store is the part of the inventory the ACME server uses. *inventory.Store
// satisfies it; its errors wrap inventory.ErrNotFound, ErrDuplicate,
// ErrConflict and ErrInvalid, and every method is safe for concurrent use.
type Store interface {
	CreateACMEAccount(ctx context.Context, a *inventory.ACMEAccount, ev inventory.Event) error
	ACMEAccount(ctx context.Context, f inventory.ACMEAccountFilter) (*inventory.ACMEAccount, error)
	CountACMEAccounts(ctx context.Context, f inventory.ACMEAccountFilter) (int, error)
	UpdateACMEAccount(ctx context.Context, a *inventory.ACMEAccount, ev inventory.Event) error
	ACMENonceKey(ctx context.Context, candidate []byte) ([]byte, error)
	UseACMENonce(ctx context.Context, id string, expires time.Time) (bool, error)
	PurgeACMEUsedNonces(ctx context.Context, now time.Time) (int64, error)
	ACMEEABKey(ctx context.Context, kid string) (*inventory.ACMEEABKey, error)
	CreateACMEOrder(ctx context.Context, o *inventory.ACMEOrder, authzs []inventory.ACMEAuthz) error
	ACMEOrder(ctx context.Context, id string) (*inventory.ACMEOrder, error)
	FindACMEOrders(ctx context.Context, f inventory.ACMEOrderFilter) ([]inventory.ACMEOrder, error)
	CountACMEOrders(ctx context.Context, f inventory.ACMEOrderFilter) (int, error)
	ACMEAuthzs(ctx context.Context, f inventory.ACMEAuthzFilter) ([]inventory.ACMEAuthz, error)
	UpdateACMEOrder(ctx context.Context, id string, from []string, u inventory.ACMEOrderUpdate) error
	UpdateACMEAuthz(ctx context.Context, id string, from []string, status string) error
	UpdateACMEChallenge(ctx context.Context, id string, from []string, u inventory.ACMEChallengeUpdate) error
	Certificate(ctx context.Context, issuerID, serial string) (*inventory.Certificate, error)
	FindCertificates(ctx context.Context, f inventory.CertFilter) ([]inventory.Certificate, error)
	Issuers(ctx context.Context) ([]inventory.Issuer, error)
	KeyBlocked(ctx context.Context, pubkeySHA256 string) (*inventory.BlockedKey, error)
	AppendEvent(ctx context.Context, e inventory.Event) (inventory.Event, error)
}

// EAB policies of a profile.
const (
	EABNone     = ""         // accounts without EAB only (EAB sent is ignored)
	EABOptional = "optional" // EAB verified and bound when sent
	EABRequired = "required"
)

// Profile is one ACME directory.
type Profile struct {
	// CAProfiles are the MICA issuance profiles this directory offers
	// through the profiles extension; the first is the default.
	CAProfiles []string `yaml:"ca_profiles" json:"ca_profiles"`
	EAB        string   `yaml:"eab,omitempty" json:"eab,omitempty"`
	// CAAIdentities turns CAA checking (RFC 8659, RFC 8657) on: the
	// issuer domain names that mean this CA in issue and issuewild
	// properties, e.g. ["ca.example.com"]. Empty: CAA is not checked.
	CAAIdentities []string `yaml:"caa_identities,omitempty" json:"caa_identities,omitempty"`
	// Localhost accepts the single-label DNS identifier "localhost"
	// (names under .localhost are ordinary names). For development
	// directories: `mica dev` sets it; validation still has to succeed.
	Localhost bool `yaml:"localhost,omitempty" json:"localhost,omitempty"`
}

// DefaultProfiles is what `mica dev` serves: "default" for any DNS name
// or IP through the CA's server profile, without EAB.
func DefaultProfiles() map[string]Profile {
	return map[string]Profile{"default": {CAProfiles: []string{"server"}}}
}

// Limits are per-account and per-IP rate limits, counted in the store so
// they hold across replicas. Zero disables a limit.
type Limits struct {
	OrdersPerAccountPerHour int `yaml:"orders_per_account_per_hour,omitempty"`
	OrdersPerIPPerHour      int `yaml:"orders_per_ip_per_hour,omitempty"`
	AccountsPerIPPerHour    int `yaml:"accounts_per_ip_per_hour,omitempty"`
	// FailedValidationsPerAccountPerNamePerHour refuses new orders for a
	// name after this many of the account's authorizations for it failed
	// in the last hour, so a misconfigured client stops hammering its
	// own servers (and ours) with validations.
	FailedValidationsPerAccountPerNamePerHour int `yaml:"failed_validations_per_account_per_name_per_hour,omitempty"`
}

// Options configure a Server.
type Options struct {
	CA       CA
	Store    Store
	Profiles map[string]Profile // nil: DefaultProfiles
	// BaseURL is the external https://host[:port] clients use; empty means
	// the request's Host, which suits a single listener.
	BaseURL    string
	Validation ValidationOptions
	Limits     Limits
	// EABSealer opens EAB HMAC keys (eab_seal.go). Needed for profiles
	// with EAB.
	EABSealer *EABSealer
	// OrderLifetime is how long an order and its authorizations stay
	// pending; zero means 24h.
	OrderLifetime time.Duration
	// FinalizeWait is how long finalize waits for the CA before answering
	// "processing" with Retry-After; zero means 10s.
	FinalizeWait time.Duration
	// MaxBodyBytes caps a JWS body; zero means 64 KiB.
	MaxBodyBytes int64
	// TermsOfService is the URL of the terms clients agree to, shown as
	// meta.termsOfService in the directory; empty: none.
	TermsOfService string
	// Registry receives the ACME metrics (mica_acme_*); nil keeps them
	// unexported.
	Registry prometheus.Registerer
	Now      func() time.Time
	Logger   *slog.Logger
	// Denials counts requests whose JWS fails verification (audit.go);
	// nil: they are only logged.
	Denials DenialRecorder
}

// Server is the ACME front end. Create it with New; it implements
// server.Mounter and server.Describer.
type Server struct {
	ca       CA
	store    Store
	profiles map[string]Profile
	opts     Options
	now      func() time.Time
	log      *slog.Logger
	val      *validator
	m        *metrics
	nonces   *nonces
}

// New checks opts and starts the validation workers, the nonce janitor
// and the sweep that re-queues validations a stopped replica left behind
// (recover.go), which run until ctx ends.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.CA == nil || opts.Store == nil {
		return nil, fmt.Errorf("acme: CA and Store are required")
	}
	if opts.Profiles == nil {
		opts.Profiles = DefaultProfiles()
	}
	for name, p := range opts.Profiles {
		if !profileName(name) {
			return nil, fmt.Errorf("acme: profile name %q must be letters, digits, '-' or '_'", name)
		}
		if len(p.CAProfiles) == 0 {
			return nil, fmt.Errorf("acme: profile %s lists no CA profiles", name)
		}
		for _, cp := range p.CAProfiles {
			if _, ok := opts.CA.Profile(cp); !ok {
				return nil, fmt.Errorf("acme: profile %s: the CA has no profile %q", name, cp)
			}
		}
		switch p.EAB {
		case EABNone, EABOptional, EABRequired:
		default:
			return nil, fmt.Errorf("acme: profile %s: eab must be empty, optional or required", name)
		}
		for _, id := range p.CAAIdentities {
			if !validDNSName(strings.ToLower(strings.TrimSuffix(id, "."))) {
				return nil, fmt.Errorf("acme: profile %s: CAA identity %q is not a domain name", name, id)
			}
		}
		if p.EAB != EABNone && opts.EABSealer == nil {
			return nil, fmt.Errorf("acme: profile %s uses EAB but no EAB sealer is configured", name)
		}
	}
	if opts.OrderLifetime <= 0 {
		opts.OrderLifetime = 24 * time.Hour
	}
	if opts.FinalizeWait <= 0 {
		opts.FinalizeWait = 10 * time.Second
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.BaseURL = strings.TrimSuffix(opts.BaseURL, "/")
	s := &Server{ca: opts.CA, store: opts.Store, profiles: opts.Profiles, opts: opts, now: opts.Now, log: opts.Logger}
	var err error
	if s.nonces, err = newNonces(ctx, opts.Store, opts.Now); err != nil {
		return nil, fmt.Errorf("acme: nonce key: %w", err)
	}
	if s.m, err = newMetrics(opts.Registry); err != nil {
		return nil, fmt.Errorf("acme: metrics: %w", err)
	}
	v, err := newValidator(ctx, s, opts.Validation)
	if err != nil {
		return nil, err
	}
	s.val = v
	go s.janitor(ctx)
	go s.recoverLoop(ctx)
	return s, nil
}

func profileName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Mount registers the ACME routes on the HTTPS router. Every path under
// /acme/ belongs to ACME, so its 404s and 405s are problem documents with
// a nonce like every other ACME error.
func (s *Server) Mount(https, _ chi.Router) {
	top := func(w http.ResponseWriter, r *http.Request) { s.writeError(w, r, notFound("ACME resource")) }
	https.HandleFunc("/acme", top)
	https.HandleFunc("/acme/", top)
	https.Route("/acme/{profile}", func(r chi.Router) {
		r.Use(s.common)
		r.Get("/directory", s.directory)
		r.Head("/new-nonce", s.newNonce)
		r.Get("/new-nonce", s.newNonce)
		r.Get("/renewal-info/{certID}", s.renewalInfo)
		r.Post("/new-account", s.handle(s.newAccount, jwkOnly))
		r.Post("/new-order", s.handle(s.newOrder, kidOnly))
		r.Post("/revoke-cert", s.handle(s.revokeCert, jwkOrKid))
		r.Post("/key-change", s.handle(s.keyChange, kidOnly))
		r.Post("/acct/{id}", s.handle(s.account, kidOnly))
		r.Post("/acct/{id}/orders", s.handle(s.accountOrders, kidOnly))
		r.Post("/order/{id}", s.handle(s.order, kidOnly))
		r.Post("/order/{id}/finalize", s.handle(s.finalize, kidOnly))
		r.Post("/authz/{id}", s.handle(s.authz, kidOnly))
		r.Post("/chall/{authz}/{id}", s.handle(s.challenge, kidOnly))
		r.Post("/cert/{id}", s.handle(s.certificate, kidOnly))
		r.Post("/cert/{id}/{alt}", s.handle(s.certificate, kidOnly))
		r.NotFound(func(w http.ResponseWriter, req *http.Request) { s.writeError(w, req, notFound("resource")) })
		r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
			// RFC 9110 section 15.5.6: a 405 lists the allowed methods.
			// chi hands a custom handler no list, so ask the routes.
			var allow []string
			if rctx := chi.RouteContext(req.Context()); rctx != nil {
				for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
					if r.Match(chi.NewRouteContext(), m, rctx.RoutePath) {
						allow = append(allow, m)
					}
				}
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.writeError(w, req, problem(probMalformed, http.StatusMethodNotAllowed, "method %s not allowed here", req.Method))
		})
	})
}

// WriteError answers r with an ACME problem document when r is under
// /acme/, and reports whether it did. The server's middleware calls it for
// the errors it raises before routing (a body over the cap, a panic), so
// ACME clients get problem+json and a fresh nonce there too. status is
// the HTTP status; the detail is written for the client.
func (s *Server) WriteError(w http.ResponseWriter, r *http.Request, status int, detail string) bool {
	if r.URL.Path != "/acme" && !strings.HasPrefix(r.URL.Path, "/acme/") {
		return false
	}
	typ := probMalformed
	if status >= 500 {
		typ = probServerInternal
	}
	s.writeError(w, r, problem(typ, status, "%s", detail))
	return true
}

// writeError sends p with the headers every ACME response carries (a
// fresh nonce, no caching), for errors raised outside handle.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, p *Problem) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if h.Get("Replay-Nonce") == "" {
		if nonce, err := s.newNonceValue(r.Context()); err != nil {
			s.log.Error("acme: cannot create a nonce", "err", err)
		} else {
			h.Set("Replay-Nonce", nonce)
		}
	}
	s.m.problem(p)
	writeProblem(w, p)
}

// Describe lists the directory URLs for the `mica dev` banner.
func (s *Server) Describe(httpsBase, _ string) []string {
	names := make([]string, 0, len(s.profiles))
	for n := range s.profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, 0, len(names))
	for _, n := range names {
		extra := map[string]string{EABOptional: ", EAB optional", EABRequired: ", EAB required"}[s.profiles[n].EAB]
		if len(s.profiles[n].CAAIdentities) > 0 {
			extra += ", CAA checked"
		}
		out = append(out, fmt.Sprintf("%s/acme/%s/directory (ACME, issuance profiles %s%s)", httpsBase, n,
			strings.Join(s.profiles[n].CAProfiles, ", "), extra))
	}
	return out
}

// common answers unknown profiles and sets the headers every ACME
// response carries: a fresh nonce (RFC 8555 section 6.5), no caching, and
// the directory link (section 7.1).
func (s *Server) common(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "profile")
		if _, ok := s.profiles[name]; !ok {
			s.writeError(w, r, notFound("ACME directory"))
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Add("Link", fmt.Sprintf(`<%s>;rel="index"`, s.url(r, "directory")))
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/directory") {
			nonce, err := s.newNonceValue(r.Context())
			if err != nil {
				s.log.Error("acme: cannot create a nonce", "err", err)
				writeProblem(w, internal(err))
				return
			}
			h.Set("Replay-Nonce", nonce)
		}
		next.ServeHTTP(w, r)
	})
}

// base returns the external base URL for r.
func (s *Server) base(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return s.opts.BaseURL
	}
	return "https://" + r.Host
}

// url builds the URL of a resource under r's profile.
func (s *Server) url(r *http.Request, parts ...string) string {
	return s.base(r) + "/acme/" + chi.URLParam(r, "profile") + "/" + strings.Join(parts, "/")
}

// remoteIP is the client address for audit and per-IP limits.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// writeJSON sends v with status and an optional Location.
func writeJSON(w http.ResponseWriter, status int, location string, v any) {
	if location != "" {
		w.Header().Set("Location", location)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// randomID returns 16 random bytes, base64url: IDs, tokens and nonces.
func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// newToken is a challenge token: 256 bits, base64url (RFC 8555 section 8.1
// asks for at least 128; clients decode it, so it must be whole bytes).
func newToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) profile(r *http.Request) Profile { return s.profiles[chi.URLParam(r, "profile")] }

// janitor deletes expired used-nonce rows every few minutes. Any replica may run
// it; the DELETE is idempotent.
func (s *Server) janitor(ctx context.Context) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.store.PurgeACMEUsedNonces(ctx, s.now()); err != nil && ctx.Err() == nil {
				s.log.Warn("acme: purging nonces", "err", err)
			}
		}
	}
}

// accountURL is the kid of account id.
func (s *Server) accountURL(r *http.Request, id string) string { return s.url(r, "acct", id) }

func contains(list []string, v string) bool { return slices.Contains(list, v) }
