package web

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// Per-source login throttle defaults: a client address that fails
// LoginSourceLimit logins, across all accounts, within LoginSourceWindow
// gets 429 until the oldest of those failures leaves the window. The
// per-account lock (inventory.MaxFailedLogins) stops guessing one
// password; this stops one address spraying many accounts.
const (
	LoginSourceLimit  = 20
	LoginSourceWindow = 15 * time.Minute
)

type sourceLimit struct {
	n      int
	window time.Duration
}

// WithLoginSourceLimit overrides the per-source login throttle (n
// failures per window); n or window <= 0 keeps the defaults.
func (s *Server) WithLoginSourceLimit(n int, window time.Duration) *Server {
	s.srcLimit = sourceLimit{n: n, window: window}
	return s
}

func (s *Server) sourceLimit() (int, time.Duration) {
	n, win := s.srcLimit.n, s.srcLimit.window
	if n <= 0 {
		n = LoginSourceLimit
	}
	if win <= 0 {
		win = LoginSourceWindow
	}
	return n, win
}

// throttledSource answers 429 with Retry-After, and audits the refused
// attempt, when r's source address is over its failure limit. The count
// lives in the audit log (the database), so all replicas agree. It
// returns true when it has answered.
func (s *Server) throttledSource(w http.ResponseWriter, r *http.Request, name string) bool {
	n, win := s.sourceLimit()
	now := s.now()
	until, err := s.store.LoginSourceThrottle(r.Context(), sourceOf(r), n, win, now)
	if err != nil {
		s.log.Error("login: read source throttle", "err", err)
		s.render(w, r, http.StatusServiceUnavailable, "login", "Log in", "Try again later.", nil)
		return true
	}
	if !now.Before(until) {
		return false
	}
	secs := int64((until.Sub(now) + time.Second - 1) / time.Second)
	// A throttled address may keep trying: its refusals are summarised
	// (when a summariser is set), not written one by one; the failures
	// that throttled it (ui.login) stay single events the count reads.
	s.denied(r, "ui", inventory.ActionLoginThrottled, inventory.Event{Actor: "user:" + truncate(name, 64), Action: inventory.ActionLoginThrottled, Object: "user:" + truncate(name, 64),
		Outcome: "denied", Details: []byte(fmt.Sprintf(`{"why":"too many failed logins from this address","retry_after_seconds":%d}`, secs))})
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	s.render(w, r, http.StatusTooManyRequests, "login", "Log in",
		"Too many failed logins from your address; try again in "+ca.HumanDuration(time.Duration(secs)*time.Second)+".", nil)
	return true
}

// crossOriginDenied is http.CrossOriginProtection's deny handler: a
// state-changing request from another site (CSRF) is refused with the
// normal 403 page and one denied audit event naming the session user
// when the request carried a valid session cookie.
func (s *Server) crossOriginDenied(w http.ResponseWriter, r *http.Request) {
	actor := "anonymous"
	r = s.withSessionUser(r)
	if u := uiUser(r.Context()); u != nil {
		actor = "user:" + u.Name
	}
	s.uiAudit(r, inventory.Event{Actor: actor, Action: "ui.cross_origin", Object: "ui:" + truncate(r.URL.Path, 200), Outcome: "denied",
		Details: []byte(fmt.Sprintf(`{"method":%q,"origin":%q}`, r.Method, truncate(r.Header.Get("Origin"), 200)))})
	s.render(w, r, http.StatusForbidden, "list", "Forbidden", "Cross-origin request refused: submit forms from MICA's own pages.", listData{})
}
