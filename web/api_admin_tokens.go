package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// ESTTokenAdmin manages one-time EST enrollment tokens: enroll.TokenAdmin,
// the code path `mica est token create` uses. Methods are called
// concurrently and honour ctx. CreateToken validates the request (label
// accepting tokens, ttl within the cap, names) and returns errors wrapping
// inventory.ErrInvalid for bad input; it stores only the secret's digest,
// audited with ev, and returns the credential, which the caller shows
// once and never logs. RevokeToken returns inventory.ErrNotFound or
// inventory.ErrConflict (already used).
type ESTTokenAdmin interface {
	CreateToken(ctx context.Context, label string, names []string, ttl time.Duration, ev inventory.Event) (*inventory.ESTToken, string, error)
	Tokens(ctx context.Context) ([]inventory.ESTToken, error)
	RevokeToken(ctx context.Context, id string, ev inventory.Event) error
	TokenLabels() []string
}

// credentials are the admin-only credential managers (EST tokens, EAB
// keys) and the profile reader. A nil member answers 503.
type credentials struct {
	tokens   ESTTokenAdmin
	eab      EABKeyAdmin
	profiles ProfileLister
}

// WithCredentials enables /api/v1/est/tokens, /api/v1/acme/eab-keys,
// /api/v1/profiles and /ui/admin/credentials. Any of them may be nil: its
// routes then answer 503.
func (s *Server) WithCredentials(tokens ESTTokenAdmin, eab EABKeyAdmin, profiles ProfileLister) *Server {
	s.creds = credentials{tokens: tokens, eab: eab, profiles: profiles}
	return s
}

// mountAPICredentials registers the credential routes. Tokens and EAB
// keys are admin only (require admits admin); profiles are policy, which
// operators read too.
func (s *Server) mountAPICredentials(r chi.Router) {
	r.Get("/est/tokens", s.require(s.listESTTokens))
	r.Post("/est/tokens", s.require(s.createESTToken))
	r.Delete("/est/tokens/{id}", s.require(s.revokeESTToken))
	r.Get("/acme/eab-keys", s.require(s.listEABKeys))
	r.Post("/acme/eab-keys", s.require(s.createEABKey))
	r.Delete("/acme/eab-keys/{kid}", s.require(s.revokeEABKey))
	r.Get("/profiles", s.require(s.listProfiles, inventory.RoleOperator))
}

// DefaultTokenTTL is a new token's lifetime when the request names none,
// as for `mica est token create`.
const DefaultTokenTTL = 24 * time.Hour

// estTokenView is a token as listed: never its secret or digest.
type estTokenView struct {
	ID        string     `json:"id"`
	Label     string     `json:"label"`
	Names     []string   `json:"names"`
	Status    string     `json:"status"` // unused, used, expired
	CreatedBy string     `json:"created_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
	UsedBy    string     `json:"used_by,omitempty"`
}

func tokenView(t inventory.ESTToken, now time.Time) estTokenView {
	v := estTokenView{ID: t.ID, Label: t.Label, Names: t.Names, Status: "unused", CreatedBy: t.CreatedBy,
		CreatedAt: t.CreatedAt.UTC(), ExpiresAt: t.ExpiresAt.UTC(), UsedBy: t.UsedBy}
	if v.Names == nil {
		v.Names = []string{}
	}
	switch {
	case !t.UsedAt.IsZero():
		u := t.UsedAt.UTC()
		v.UsedAt, v.Status = &u, "used"
	case !t.ExpiresAt.After(now):
		v.Status = "expired"
	}
	return v
}

// errNotConfigured answers a credential route whose manager is not wired.
var errNotConfigured = ca.Errorf(ca.ErrUnavailable, "this server does not manage these credentials")

// listESTTokens: GET /api/v1/est/tokens (admin).
func (s *Server) listESTTokens(w http.ResponseWriter, r *http.Request) {
	if s.creds.tokens == nil {
		s.fail(w, r, errNotConfigured)
		return
	}
	ts, err := s.creds.tokens.Tokens(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]estTokenView, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenView(t, s.now()))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

// parseTTL reads "90m", "24h" or "7d"; empty is DefaultTokenTTL. The cap
// is the enroll package's, applied when the token is made.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return DefaultTokenTTL, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 3650 {
			return 0, fmt.Errorf("%w: ttl %q is not a duration such as 1h or 7d", inventory.ErrInvalid, clipText(s))
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: ttl %q is not a positive duration such as 1h or 7d", inventory.ErrInvalid, clipText(s))
	}
	return d, nil
}

func clipText(s string) string {
	if t := truncate(s, 32); t != s {
		return t + "…"
	}
	return s
}

// createdToken is the answer to a token creation: the credential is in
// it this once, and nowhere else ever.
type createdToken struct {
	estTokenView
	Username   string `json:"username"`
	Password   string `json:"password"`
	Credential string `json:"credential"` // USER:PASSWORD for HTTP Basic
}

// newESTToken validates and creates a token for the API and the UI.
func (s *Server) newESTToken(ctx context.Context, label string, names []string, ttlText string, ev inventory.Event) (*createdToken, error) {
	if s.creds.tokens == nil {
		return nil, errNotConfigured
	}
	ttl, err := parseTTL(ttlText)
	if err != nil {
		return nil, err
	}
	tok, cred, err := s.creds.tokens.CreateToken(ctx, label, names, ttl, ev)
	if err != nil {
		return nil, err
	}
	user, pass, _ := strings.Cut(cred, ":")
	return &createdToken{estTokenView: tokenView(*tok, s.now()), Username: user, Password: pass, Credential: cred}, nil
}

// createESTToken: POST /api/v1/est/tokens (admin) {"label", "names",
// "ttl"}. Answers 201 with the credential, once; only its digest is
// stored. The store audits the creation (est.token.create).
func (s *Server) createESTToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Label string   `json:"label"`
		Names []string `json:"names"`
		TTL   string   `json:"ttl"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Label == "" {
		writeError(w, http.StatusBadRequest, "label is required")
		return
	}
	out, err := s.newESTToken(r.Context(), body.Label, body.Names, body.TTL, s.apiEvent(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, out)
}

// revokeESTToken: DELETE /api/v1/est/tokens/{id} (admin). A used token is
// 409: it has paid for its certificate; revoke that instead.
func (s *Server) revokeESTToken(w http.ResponseWriter, r *http.Request) {
	if s.creds.tokens == nil {
		s.fail(w, r, errNotConfigured)
		return
	}
	id := chi.URLParam(r, "id")
	if err := s.creds.tokens.RevokeToken(r.Context(), id, s.apiEvent(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": id})
}

// credentialMessage is what a failed credential action shows: the user
// message of a validation error without the package prefix.
func credentialMessage(err error) string {
	msg := messageOf(err)
	if errors.Is(err, inventory.ErrInvalid) {
		msg = strings.TrimPrefix(msg, inventory.ErrInvalid.Error()+": ")
	}
	return msg
}
