package enroll

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// retryError carries a Retry-After in seconds alongside a ca error.
type retryError struct {
	err   error
	after int
}

func (e *retryError) Error() string   { return e.err.Error() }
func (e *retryError) Unwrap() error   { return e.err }
func (e *retryError) retryAfter() int { return e.after }

// status maps a ca error kind to an HTTP status. This is the only place
// EST decides status codes for refusals.
func status(err error) int {
	if errors.Is(err, errMediaType) {
		return http.StatusUnsupportedMediaType
	}
	if errors.Is(err, errNotAcceptable) {
		return http.StatusNotAcceptable
	}
	switch ca.KindOf(err) {
	case ca.ErrBadCSR:
		return http.StatusBadRequest
	case ca.ErrWeakKey, ca.ErrPolicy, ca.ErrLifetime:
		return http.StatusForbidden
	case ca.ErrUnauthorized:
		return http.StatusUnauthorized
	case ca.ErrRateLimited:
		return http.StatusTooManyRequests
	case ca.ErrUnavailable:
		return http.StatusServiceUnavailable
	case ca.ErrNotFound:
		return http.StatusNotFound
	}
	if inventory.IsUnavailable(err) {
		// A store call outside ca (token, rate, pending request) during
		// a database outage: 503 with Retry-After, like ca.ErrUnavailable.
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail answers a refused or failed request and audits it. Errors that
// came out of ca.Issue are already audited there (passing audited=true
// through alreadyAudited avoids a second event).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, op, requester string, err error) {
	code := status(err)
	msg := ca.UserMessage(err)
	if code == http.StatusServiceUnavailable && ca.KindOf(err) != ca.ErrUnavailable {
		msg = "the service is temporarily unavailable; retry later"
	}
	switch code {
	case http.StatusUnauthorized:
		// Set in the map directly: Set would canonicalise the name to
		// Www-Authenticate, and libest compares header names exactly.
		w.Header()["WWW-Authenticate"] = []string{`Basic realm="EST", charset="UTF-8"`}
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		after := 30
		var re *retryError
		if errors.As(err, &re) {
			after = re.retryAfter()
		}
		w.Header().Set("Retry-After", strconv.Itoa(after))
	}
	if code >= 500 {
		s.log.Error("EST request failed", "op", op, "remote", r.RemoteAddr, "err", err)
	} else {
		s.log.Info("EST request refused", "op", op, "remote", r.RemoteAddr, "status", code, "reason", msg)
	}
	if !errors.Is(err, errAudited) && !s.summarised(r, op, requester, code) {
		s.auditRefusal(r, op, requester, code, msg)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

// errAudited marks an error whose refusal ca.Issue has already written to
// the audit log.
var errAudited = errors.New("audited by ca")

type auditedError struct{ error }

func (e auditedError) Unwrap() []error { return []error{e.error, errAudited} }

func (s *Server) auditRefusal(r *http.Request, op, requester string, code int, reason string) {
	details, _ := json.Marshal(map[string]any{"op": op, "status": code, "reason": reason, "path": r.URL.Path})
	outcome := "denied"
	if code >= 500 {
		outcome = "error"
	}
	if requester == "" {
		requester = "anonymous"
	}
	if _, err := s.store.AppendEvent(r.Context(), inventory.Event{
		Time: s.now(), Actor: requester, Action: "est." + op, Protocol: "est",
		Source: s.sourceAddr(r), Object: "est:" + r.URL.Path, Outcome: outcome, Details: details,
	}); err != nil {
		s.log.Error("auditing EST refusal", "err", err)
	}
}
