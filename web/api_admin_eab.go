package web

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
)

// EABKeyAdmin manages ACME external account binding keys: acme.EABAdmin,
// the code path `mica acme eab create` uses. Methods are called
// concurrently and honour ctx. CreateEABKey refuses a profile that is not
// an ACME directory with an error wrapping inventory.ErrInvalid, stores
// the HMAC key only sealed, audited with ev, and returns it base64url for
// the caller to show once and never log. EABKeys never carries a key,
// even sealed. RevokeEABKey returns inventory.ErrNotFound or
// inventory.ErrConflict (bound to an account already).
type EABKeyAdmin interface {
	CreateEABKey(ctx context.Context, profile string, ev inventory.Event) (kid, hmacKey string, err error)
	EABKeys(ctx context.Context) ([]inventory.ACMEEABKey, error)
	RevokeEABKey(ctx context.Context, kid string, ev inventory.Event) error
	EABProfiles() []string
}

// eabKeyView is an EAB key as listed: never the HMAC key.
type eabKeyView struct {
	KeyID     string     `json:"kid"`
	Profile   string     `json:"profile"`
	Status    string     `json:"status"`            // unbound, bound
	AccountID string     `json:"account,omitempty"` // the account it bound
	CreatedBy string     `json:"created_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
}

func eabView(k inventory.ACMEEABKey) eabKeyView {
	v := eabKeyView{KeyID: k.KeyID, Profile: k.Profile, Status: "unbound", AccountID: k.AccountID,
		CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt.UTC()}
	if k.AccountID != "" {
		v.Status = "bound"
	}
	if k.UsedAt != nil {
		u := k.UsedAt.UTC()
		v.UsedAt = &u
	}
	return v
}

// listEABKeys: GET /api/v1/acme/eab-keys (admin).
func (s *Server) listEABKeys(w http.ResponseWriter, r *http.Request) {
	if s.creds.eab == nil {
		s.fail(w, r, errNotConfigured)
		return
	}
	ks, err := s.creds.eab.EABKeys(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]eabKeyView, 0, len(ks))
	for _, k := range ks {
		out = append(out, eabView(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

// createdEABKey is the answer to a key creation: the HMAC key is in it
// this once, and stored only sealed.
type createdEABKey struct {
	KeyID   string `json:"kid"`
	Profile string `json:"profile"`
	HMACKey string `json:"hmac_key"` // base64url, for --eab-hmac-key
}

// newEABKey creates a key for the API and the UI.
func (s *Server) newEABKey(ctx context.Context, profile string, ev inventory.Event) (*createdEABKey, error) {
	if s.creds.eab == nil {
		return nil, errNotConfigured
	}
	kid, key, err := s.creds.eab.CreateEABKey(ctx, profile, ev)
	if err != nil {
		return nil, err
	}
	return &createdEABKey{KeyID: kid, Profile: profile, HMACKey: key}, nil
}

// createEABKey: POST /api/v1/acme/eab-keys (admin) {"profile"}. Answers
// 201 with the key ID and HMAC key, once. The store audits the creation
// (acme.eab.create).
func (s *Server) createEABKey(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Profile string `json:"profile"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Profile == "" {
		writeError(w, http.StatusBadRequest, "profile is required")
		return
	}
	out, err := s.newEABKey(r.Context(), body.Profile, s.apiEvent(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, out)
}

// revokeEABKey: DELETE /api/v1/acme/eab-keys/{kid} (admin). A bound key
// is 409: the key is spent; deactivate the account instead.
func (s *Server) revokeEABKey(w http.ResponseWriter, r *http.Request) {
	if s.creds.eab == nil {
		s.fail(w, r, errNotConfigured)
		return
	}
	kid := chi.URLParam(r, "kid")
	if err := s.creds.eab.RevokeEABKey(r.Context(), kid, s.apiEvent(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": kid})
}
