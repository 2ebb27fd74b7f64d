package enroll

import "net/http"

// DenialRecorder counts an unauthenticated refusal without writing an
// audit event for it (inventory/denials.Summariser writes one summary per
// source and window). Record must not block: it runs on the request path.
type DenialRecorder interface {
	Record(protocol, source, kind string)
}

// summarised counts a refusal of a caller that did not authenticate — 401
// (bad or missing credentials), or 429 before authentication — when a
// recorder is set, and reports whether it did; the caller then writes no
// event of its own. Everything else is audited one by one as before.
func (s *Server) summarised(r *http.Request, op, requester string, code int) bool {
	if s.denials == nil {
		return false
	}
	var kind string
	switch {
	case code == http.StatusUnauthorized:
		kind = "est." + op + ".unauthorized"
	case code == http.StatusTooManyRequests && requester == "":
		kind = "est." + op + ".rate_limited"
	default:
		return false
	}
	s.denials.Record("est", s.sourceAddr(r), kind)
	return true
}
