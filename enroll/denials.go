package enroll

import (
	"net/http"
	"strconv"
)

// DenialRecorder counts an unauthenticated refusal without writing an
// audit event for it (inventory/denials.Summariser writes one summary per
// source and window). Record must not block: it runs on the request path.
type DenialRecorder interface {
	Record(protocol, source, kind string)
}

// summarised counts a refusal of a caller that did not authenticate — 401
// (bad or missing credentials), or any other 4xx answered before the
// caller authenticated (a malformed body, a wrong content type, a rate
// limit: the body is checked before the credential is spent) — when a
// recorder is set, and reports whether it did; the caller then writes no
// event of its own. Refusals of an authenticated caller and server errors
// are audited one by one as before: they name someone.
func (s *Server) summarised(r *http.Request, op, requester string, code int) bool {
	if s.denials == nil {
		return false
	}
	var kind string
	switch {
	case code == http.StatusUnauthorized:
		kind = "est." + op + ".unauthorized"
	case requester != "" || code < 400 || code >= 500:
		return false
	case code == http.StatusTooManyRequests:
		kind = "est." + op + ".rate_limited"
	case code == http.StatusBadRequest:
		kind = "est." + op + ".malformed"
	case code == http.StatusUnsupportedMediaType:
		kind = "est." + op + ".content_type"
	default:
		kind = "est." + op + ".status_" + strconv.Itoa(code)
	}
	s.denials.Record("est", s.sourceAddr(r), kind)
	return true
}
