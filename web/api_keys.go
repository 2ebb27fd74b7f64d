package web

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// KeyReporter is what the Keys and Compliance pages and their API need.
// cmd/mica implements it over the store and configuration; both methods
// are safe for concurrent use and honour ctx.
type KeyReporter interface {
	// Keys lists the key inventory, oldest first.
	Keys(ctx context.Context) ([]inventory.Key, error)
	// Compliance evaluates the live state now and appends ev (who asked,
	// from where; action report.compliance) to the audit log with the
	// result counts: running the report is itself audited.
	Compliance(ctx context.Context, ev inventory.Event) (*ca.Report, error)
}

// WithKeyReporter enables /ui/keys, /ui/compliance, /api/v1/keys and
// /api/v1/compliance; without it they answer 503.
func (s *Server) WithKeyReporter(k KeyReporter) *Server {
	s.keys = k
	return s
}

// Roles that may read the key inventory (metadata only: no key, no
// secret is ever shown) and run the compliance report.
var (
	keyReaders        = []string{inventory.RoleViewer, inventory.RoleOperator, inventory.RoleAuditor}
	complianceReaders = []string{inventory.RoleAuditor}
)

// mountAPIKeys registers the key-lifecycle API routes.
func (s *Server) mountAPIKeys(r chi.Router) {
	r.Get("/keys", s.require(s.listKeys, keyReaders...))
	r.Get("/compliance", s.require(s.runCompliance, complianceReaders...))
}

// keyView is one key with what a reader needs to act on it.
type keyView struct {
	inventory.Key
	// State is the badge: ok, due (rotation within 30 days), overdue,
	// pending, retired or destroyed.
	State string `json:"state"`
	// Usage says how the use count was obtained: "counted by the signer",
	// "counted where used" or "not metered".
	Usage string `json:"usage"`
}

// rotationSoon is when the Keys page starts showing "due".
const rotationSoon = 30 * 24 * time.Hour

func viewKey(k inventory.Key, now time.Time) keyView {
	v := keyView{Key: k, State: "ok"}
	switch k.Metering {
	case inventory.MeteringNone:
		v.Usage = "not metered"
	case inventory.MeteringSite:
		v.Usage = "counted where used"
	default:
		v.Usage = "counted by the signer"
	}
	switch {
	case k.Status == inventory.KeyRetired || k.Status == inventory.KeyDestroyed:
		v.State = k.Status
	case k.Status == inventory.KeyPreActivation:
		v.State = "pending"
	case k.RotationDue != nil && !now.Before(*k.RotationDue):
		v.State = "overdue"
	case k.RotationDue != nil && k.RotationDue.Sub(now) < rotationSoon:
		v.State = "due"
	}
	return v
}

// listKeys: GET /api/v1/keys — the key inventory.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	if s.keys == nil {
		writeError(w, http.StatusServiceUnavailable, "the key inventory is not available on this server")
		return
	}
	keys, err := s.keys.Keys(r.Context())
	if err != nil {
		s.log.Error("list keys", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the key inventory cannot be read")
		return
	}
	now := s.now()
	out := make([]keyView, len(keys))
	for i, k := range keys {
		out[i] = viewKey(k, now)
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}
