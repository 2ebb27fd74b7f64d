package web

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
)

//go:generate go test -run TestHTMXIntegrity .

// HTMXIntegrity is the Subresource Integrity hash of static/htmx.min.js
// (htmx.org 2.0.11 from the npm registry). TestHTMXIntegrity recomputes it,
// so a changed file cannot ship with a stale hash; the browser refuses
// the script if the two disagree.
const HTMXIntegrity = "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// uiCSP allows scripts and styles from this origin only: no inline
// script, no eval, nothing from elsewhere.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// SessionCookie names the UI session cookie.
const SessionCookie = "mica_session"

// SessionTTL is how long a UI session lasts.
const SessionTTL = 8 * time.Hour

// pageNames are the templates parsed, each with layout.html.
var pageNames = []string{"login", "dashboard", "certificates", "certificate", "list", "users", "discovery"}

func parsePages() (map[string]*template.Template, error) {
	// serial prints every serial in the one display form, as the API
	// and CLI do.
	funcs := template.FuncMap{"serial": inventory.FormatSerial}
	pages := map[string]*template.Template{}
	for _, n := range pageNames {
		t, err := template.New(n).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html")
		if err != nil {
			return nil, fmt.Errorf("web: parse template %s: %w", n, err)
		}
		pages[n] = t
	}
	return pages, nil
}

// page is what every template gets.
type page struct {
	Title         string
	User          *inventory.User
	Flash, Error  string
	Data          any
	HTMXIntegrity string
	CanRead       bool // viewer, operator, admin
	CanRevoke     bool // operator, admin
	CanAudit      bool // auditor, admin
	IsAdmin       bool
}

type userKey struct{}

func uiUser(ctx context.Context) *inventory.User {
	u, _ := ctx.Value(userKey{}).(*inventory.User)
	return u
}

// mountUI registers /ui/ on the HTTPS router: browser routes on their own
// sub-router, apart from the API's.
func (s *Server) mountUI(https chi.Router) {
	static, _ := fs.Sub(staticFS, "static")
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(s.crossOriginDenied)) // audited 403 (ui_throttle.go)
	https.Route("/ui", func(r chi.Router) {
		r.Use(s.uiHeaders, cop.Handler, s.session)
		r.Handle("/static/*", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
		r.Get("/login", s.loginForm)
		r.Post("/login", s.login)
		r.Post("/logout", s.logout)
		r.Group(func(r chi.Router) {
			r.Use(s.loggedIn)
			r.Get("/", s.dashboard)
			read := []string{inventory.RoleViewer, inventory.RoleOperator}
			r.Get("/certificates", s.uiRequire(s.certificatesPage, read...))
			r.Get("/certificates.csv", s.uiRequire(s.certificatesCSV, read...))
			r.Get("/certificates/{issuer}/{serial}", s.uiRequire(s.certificatePage, read...))
			r.Post("/certificates/{issuer}/{serial}/revoke", s.uiRequire(s.uiRevoke, inventory.RoleOperator))
			r.Get("/issuers", s.uiRequire(s.issuersPage, read...))
			r.Get("/discovery", s.uiRequire(s.discoveryPage, read...))
			r.Post("/discovery", s.uiRequire(s.uiQueueScan, inventory.RoleOperator))
			r.Get("/audit", s.uiRequire(s.auditPage, inventory.RoleAuditor))
			r.Get("/users", s.uiRequire(s.usersPage))
			s.mountUIAdmin(r)
			s.mountUIKeys(r) // /ui/keys, /ui/compliance (ui_keys.go)
			// /ui/admin/credentials (ui_admin_credentials.go)
			s.mountUICredentials(r)
		})
	})
	https.Get("/ui", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusFound) })
}

// uiHeaders sets the strict browser headers and bounds POST bodies.
func (s *Server) uiHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.Method != http.MethodGet || r.URL.Path == "/ui/" {
			h.Set("Cache-Control", "no-store")
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		next.ServeHTTP(w, r)
	})
}

// session attaches the logged-in user, if any. When the session cannot be
// read because the database is unreachable, the answer is the plain
// outage page: sending the user to the login form would only fail again
// (and look like a logout).
func (s *Server) session(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, err := s.sessionUser(r)
		if err != nil {
			s.log.Warn("UI: reading the session failed", "path", r.URL.Path, "err", err)
			uiUnavailable(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withSessionUser returns r carrying the user of its session cookie, if
// the cookie names a live session; any failure counts as no session.
func (s *Server) withSessionUser(r *http.Request) *http.Request {
	r, _ = s.sessionUser(r)
	return r
}

// sessionUser is withSessionUser that also returns an outage
// (inventory.IsUnavailable) instead of treating it as "not logged in".
func (s *Server) sessionUser(r *http.Request) (*http.Request, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return r, nil
	}
	u, err := s.store.SessionUser(r.Context(), c.Value)
	switch {
	case err == nil:
		return r.WithContext(context.WithValue(r.Context(), userKey{}, u)), nil
	case inventory.IsUnavailable(err):
		return r, err
	}
	return r, nil
}

// uiUnavailable is the plain page of a database outage: 503, Retry-After,
// a sentence, and nothing that needs the database (no layout, no user).
func uiUnavailable(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Retry-After", retryAfterOutage)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte("<!doctype html>\n<title>MICA is temporarily unavailable</title>\n" +
		"<h1>Temporarily unavailable</h1>\n<p>MICA cannot reach its database right now. Reload this page in a minute; nothing you did was lost.</p>\n"))
}

func (s *Server) loggedIn(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if uiUser(r.Context()) == nil {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// uiRequire admits admin and roles; anyone else gets a 403 page and a
// denied audit event.
func (s *Server) uiRequire(h http.HandlerFunc, roles ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u := uiUser(r.Context())
		if u.Role == inventory.RoleAdmin || contains(roles, u.Role) {
			h(w, r)
			return
		}
		s.uiAudit(r, inventory.Event{Action: "ui.access", Object: "ui:" + r.URL.Path, Outcome: "denied"})
		s.render(w, r, http.StatusForbidden, "list", "Forbidden", "Your role ("+u.Role+") may not do this.", listData{})
	}
}

// uiEvent is the audit event of a UI action: who, from where.
func (s *Server) uiEvent(r *http.Request) inventory.Event {
	return inventory.Event{Actor: "user:" + uiUser(r.Context()).Name, Protocol: "ui", Source: sourceOf(r), Outcome: "ok"}
}

func (s *Server) uiAudit(r *http.Request, ev inventory.Event) {
	if ev.Actor == "" {
		if u := uiUser(r.Context()); u != nil {
			ev.Actor = "user:" + u.Name
		}
	}
	ev.Protocol, ev.Source = "ui", sourceOf(r)
	if ev.Outcome == "" {
		ev.Outcome = "ok"
	}
	s.appendAudit(r.Context(), ev)
}

// render executes a page; errMsg shows as an alert.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title, errMsg string, data any) {
	p := page{Title: title, User: uiUser(r.Context()), Error: errMsg, Data: data, HTMXIntegrity: HTMXIntegrity}
	if p.User != nil {
		role := p.User.Role
		p.IsAdmin = role == inventory.RoleAdmin
		p.CanRead = p.IsAdmin || role == inventory.RoleViewer || role == inventory.RoleOperator
		p.CanRevoke = p.IsAdmin || role == inventory.RoleOperator
		p.CanAudit = p.IsAdmin || role == inventory.RoleAuditor
	}
	if f, ok := flashes[r.URL.Query().Get("done")]; ok {
		p.Flash = f
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", retryAfterOutage)
	}
	w.WriteHeader(status)
	if err := s.pages[name].ExecuteTemplate(w, "layout", p); err != nil {
		s.log.Error("render page", "page", name, "err", err)
	}
}

// flashes are the fixed messages a redirect can ask for (?done=…), so no
// user-supplied text is ever echoed as a message.
var flashes = map[string]string{
	"revoked": "Certificate revoked.",
	"queued":  "Discovery job queued; a server replica will run it shortly.",

	"labelled":        "Labels saved.",
	"scheduled":       "Schedule created; a server replica will queue its scan when it is due.",
	"schedule-pause":  "Schedule paused.",
	"schedule-resume": "Schedule resumed.",
	"schedule-delete": "Schedule deleted.",
	"user-saved":      "User saved; the user's sessions have ended.",
}

func redirectDone(w http.ResponseWriter, r *http.Request, path, done string) {
	http.Redirect(w, r, path+"?done="+url.QueryEscape(done), http.StatusSeeOther)
}
