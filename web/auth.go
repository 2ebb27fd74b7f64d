package web

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

type principalKey struct{}

// DenialRecorder counts an unauthenticated refusal instead of writing an
// audit event for it (inventory/denials.Summariser): kind is a fixed word,
// source the client address. Record must not block; it is called on every
// refused request.
type DenialRecorder interface {
	Record(protocol, source, kind string)
}

// WithDenials summarises bad bearer tokens and throttled logins through d,
// so a flood of them adds a bounded number of audit events.
func (s *Server) WithDenials(d DenialRecorder) *Server {
	s.denials = d
	return s
}

// denied records one unauthenticated refusal: counted by the summariser
// when there is one, else written as ev.
func (s *Server) denied(r *http.Request, protocol, kind string, ev inventory.Event) {
	if s.denials != nil {
		s.denials.Record(protocol, sourceOf(r), kind)
		return
	}
	if protocol == "ui" {
		s.uiAudit(r, ev)
		return
	}
	s.audit(r, ev)
}

// principal is who is calling: the token's id and role.
type principal struct {
	Name string // "token:<id>"
	Role string
}

func principalOf(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// authenticate resolves the bearer token. A missing, malformed or unknown
// token is 401 with a WWW-Authenticate challenge, never a hint which.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || bearer == "" {
			if s.denials != nil {
				s.denials.Record("api", sourceOf(r), "api.bearer_missing")
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="mica"`)
			writeError(w, http.StatusUnauthorized, "a bearer API token is required")
			return
		}
		tok, err := s.store.AuthenticateAPIToken(r.Context(), strings.TrimSpace(bearer))
		if err != nil {
			if !isNotFound(err) {
				s.log.Error("API token lookup failed", "err", err)
				writeError(w, http.StatusServiceUnavailable, outageMessage)
				return
			}
			s.denied(r, "api", "api.bearer", inventory.Event{Actor: "anonymous", Action: "api.auth", Outcome: "denied"})
			w.Header().Set("WWW-Authenticate", `Bearer realm="mica", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid API token")
			return
		}
		p := principal{Name: "token:" + tok.ID, Role: tok.Role}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// require lets admin and the listed roles through; anyone else gets 403
// and a denied audit event naming the route.
func (s *Server) require(h http.HandlerFunc, roles ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := principalOf(r.Context())
		if p.Role == inventory.RoleAdmin || slices.Contains(roles, p.Role) {
			h(w, r)
			return
		}
		details, _ := json.Marshal(map[string]string{"method": r.Method, "path": r.URL.Path, "role": p.Role})
		s.audit(r, inventory.Event{Action: "api.access", Object: "api:" + r.URL.Path, Outcome: "denied", Details: details})
		writeError(w, http.StatusForbidden, "role "+p.Role+" may not do this")
	}
}

// apiEvent is the audit event of an API action: who, from where.
func (s *Server) apiEvent(r *http.Request) inventory.Event {
	return inventory.Event{Actor: principalOf(r.Context()).Name, Protocol: "api", Source: sourceOf(r), Outcome: "ok"}
}

// audit appends ev with the caller and source filled in. An audit write
// that fails is logged: the answer has been decided already.
func (s *Server) audit(r *http.Request, ev inventory.Event) {
	if ev.Actor == "" {
		ev.Actor = principalOf(r.Context()).Name
	}
	ev.Protocol, ev.Source = "api", sourceOf(r)
	if ev.Outcome == "" {
		ev.Outcome = "ok"
	}
	s.appendAudit(r.Context(), ev)
}

// appendAudit appends ev even when the request was cancelled (the answer
// has been decided already); a failed write is logged.
func (s *Server) appendAudit(ctx context.Context, ev inventory.Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.store.AppendEvent(ctx, ev); err != nil {
		s.log.Error("cannot write audit event", "action", ev.Action, "err", err)
	}
}

func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
