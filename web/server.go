package web

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// MaxBody caps every request body the API reads.
const MaxBody = 64 << 10

// Store is the part of the inventory web needs. *inventory.Store
// satisfies it; methods are called concurrently and must honour ctx, and
// return errors wrapping the inventory error vocabulary.
type Store interface {
	Search(ctx context.Context, f inventory.SearchFilter) (*inventory.SearchPage, error)
	CountSearch(ctx context.Context, f inventory.SearchFilter) (int, error)
	CertificateDetail(ctx context.Context, issuerID, serial string) (*inventory.Certificate, error)
	Installations(ctx context.Context, fingerprint string) ([]inventory.Installation, error)
	Events(ctx context.Context, f inventory.EventFilter) ([]inventory.Event, error)
	AppendEvent(ctx context.Context, e inventory.Event) (inventory.Event, error)
	AuthenticateAPIToken(ctx context.Context, bearer string) (*inventory.APIToken, error)
	CreateDiscoveryJob(ctx context.Context, kind string, spec any, ev inventory.Event) (*inventory.DiscoveryJob, error)
	DiscoveryJob(ctx context.Context, id int64) (*inventory.DiscoveryJob, error)
	DiscoveryJobs(ctx context.Context, before int64, limit int) ([]inventory.DiscoveryJob, error)
	FindDiscovered(ctx context.Context, f inventory.DiscoveredFilter) ([]inventory.Discovered, error)
	Issuers(ctx context.Context) ([]inventory.Issuer, error)
	IssuedPerDay(ctx context.Context, since time.Time) ([]inventory.DayCount, error)
	ESTPoolLevels(ctx context.Context) ([]inventory.PoolLevel, error)
	User(ctx context.Context, name string) (*inventory.User, error)
	Users(ctx context.Context) ([]inventory.User, error)
	CreateUser(ctx context.Context, u inventory.User, ev inventory.Event) error
	CertificateByFingerprint(ctx context.Context, fingerprint string) (*inventory.Certificate, error)
	RecordSighting(ctx context.Context, sg inventory.Sighting) (*inventory.Discovered, error)
	LoginResult(ctx context.Context, name string, ok bool) error
	CreateSession(ctx context.Context, user string, ttl time.Duration) (string, error)
	SessionUser(ctx context.Context, tok string) (*inventory.User, error)
	DeleteSession(ctx context.Context, tok string) error

	// Label editing, user administration and discovery schedules
	// (labels_change.go, users_admin.go, schedules.go in inventory).
	ChangeLabels(ctx context.Context, issuerID, serial string, c inventory.LabelChange, ev inventory.Event) (*inventory.Labels, bool, error)
	SetUserRole(ctx context.Context, name, role string, ev inventory.Event) error
	SetUserPassword(ctx context.Context, name, hash string, ev inventory.Event) error
	SetUserDisabled(ctx context.Context, name string, disabled bool, ev inventory.Event) error
	DeleteUser(ctx context.Context, name string, ev inventory.Event) error
	CreateSchedule(ctx context.Context, sc inventory.Schedule, ev inventory.Event) (*inventory.Schedule, error)
	Schedule(ctx context.Context, id int64) (*inventory.Schedule, error)
	Schedules(ctx context.Context) ([]inventory.Schedule, error)
	SetScheduleEnabled(ctx context.Context, id int64, enabled bool, ev inventory.Event) (*inventory.Schedule, error)
	DeleteSchedule(ctx context.Context, id int64, ev inventory.Event) error

	uiStore // keys, CRL/OCSP freshness, login throttle (ui_store.go)
}

// Revoker revokes a certificate: ca.CA.Revoke. It audits the attempt
// whatever the outcome and returns errors of the ca vocabulary.
type Revoker interface {
	Revoke(ctx context.Context, rr ca.RevokeRequest) (*inventory.Certificate, error)
}

var _ Store = (*inventory.Store)(nil)
var _ Revoker = (*ca.CA)(nil)

// Server serves the admin API. Create with New; it is a server.Mounter.
type Server struct {
	store Store
	rev   Revoker
	log   *slog.Logger
	now   func() time.Time

	checkJob JobChecker
	keys     KeyReporter    // key inventory and compliance report (api_keys.go); nil: 503
	creds    credentials    // EST tokens, EAB keys, profiles (api_admin_tokens.go); nil members: 503
	srcLimit sourceLimit    // per-source login throttle (ui_throttle.go); zero: defaults
	denials  DenialRecorder // unauthenticated refusals, summarised (auth.go); nil: one event each
	pages    map[string]*template.Template
}

// New returns a Server over store that revokes through rev.
func New(store Store, rev Revoker, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	pages, err := parsePages()
	if err != nil {
		panic(err) // embedded templates: a build defect, caught by every test
	}
	return &Server{store: store, rev: rev, log: log, now: time.Now, pages: pages}
}

// Mount registers /api/v1/ and /ui/ on the HTTPS router (server.Mounter).
func (s *Server) Mount(https, _ chi.Router) {
	s.mountUI(https)
	https.Route("/api/v1", func(r chi.Router) {
		r.Use(s.apiHeaders)
		// Agents authenticate with their MICA-issued client certificate,
		// not a bearer token.
		r.Post("/agent/report", s.agentReport)
		r.Group(func(r chi.Router) {
			r.Use(s.authenticate)
			s.mountAPI(r)
		})
		r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusNotFound, "no such API resource")
		})
		r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		})
	})
}

// mountAPI registers the bearer-token routes with their roles.
func (s *Server) mountAPI(r chi.Router) {
	r.Get("/certificates", s.require(s.listCertificates, inventory.RoleViewer, inventory.RoleOperator))
	r.Get("/certificates/{serial}", s.require(s.getCertificate, inventory.RoleViewer, inventory.RoleOperator))
	r.Post("/certificates/{serial}/revoke", s.require(s.revokeCertificate, inventory.RoleOperator))
	r.Put("/certificates/{serial}/labels", s.require(s.putLabels, inventory.RoleOperator))
	r.Patch("/certificates/{serial}", s.require(s.patchCertificate, inventory.RoleOperator))
	r.Post("/certificates/bulk", s.require(s.bulkCertificates, inventory.RoleOperator))
	r.Get("/discovered", s.require(s.listDiscovered, inventory.RoleViewer, inventory.RoleOperator))
	r.Get("/discovery/jobs", s.require(s.listJobs, inventory.RoleViewer, inventory.RoleOperator))
	r.Post("/discovery/jobs", s.require(s.createJob, inventory.RoleOperator))
	r.Get("/discovery/jobs/{id}", s.require(s.getJob, inventory.RoleViewer, inventory.RoleOperator))
	r.Get("/discovery/schedules", s.require(s.listSchedules, inventory.RoleViewer, inventory.RoleOperator))
	r.Post("/discovery/schedules", s.require(s.createSchedule, inventory.RoleOperator))
	r.Get("/discovery/schedules/{id}", s.require(s.getSchedule, inventory.RoleViewer, inventory.RoleOperator))
	r.Patch("/discovery/schedules/{id}", s.require(s.patchSchedule, inventory.RoleOperator))
	r.Delete("/discovery/schedules/{id}", s.require(s.deleteSchedule, inventory.RoleOperator))
	r.Get("/events", s.require(s.listEvents, inventory.RoleAuditor))
	r.Get("/users", s.require(s.listUsers))
	r.Post("/users", s.require(s.createUser))
	r.Get("/users/{name}", s.require(s.getUser))
	r.Patch("/users/{name}", s.require(s.patchUser))
	r.Delete("/users/{name}", s.require(s.deleteUser))
	r.Post("/users/{name}/password", s.require(s.resetPassword))
	s.mountAPIKeys(r) // /keys, /compliance (api_keys.go)
	// /est/tokens, /acme/eab-keys, /profiles (api_admin_*.go)
	s.mountAPICredentials(r)
}

// Describe lists the API base for the dev banner (server.Describer).
func (s *Server) Describe(httpsBase, _ string) []string {
	return []string{"Web UI " + httpsBase + "/ui/", "Admin API " + httpsBase + "/api/v1/ (bearer token: mica token create --role viewer)"}
}

// apiHeaders sets the headers every API answer carries.
func (s *Server) apiHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		limit := int64(MaxBody)
		if strings.HasSuffix(r.URL.Path, "/agent/report") {
			limit = MaxAgentBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}
