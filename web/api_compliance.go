package web

import (
	"net/http"
)

// runCompliance: GET /api/v1/compliance — evaluates the compliance report
// now (ISO/IEC 27002:2022 8.24, NIST SP 800-57) and returns it as JSON.
// Each run is audited (action report.compliance), with the caller as
// actor.
func (s *Server) runCompliance(w http.ResponseWriter, r *http.Request) {
	if s.keys == nil {
		writeError(w, http.StatusServiceUnavailable, "the compliance report is not available on this server")
		return
	}
	p := principalOf(r.Context())
	rep, err := s.keys.Compliance(r.Context(), complianceEvent(p.Name, "api", sourceOf(r)))
	if err != nil {
		s.log.Error("compliance report", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the compliance report could not be evaluated")
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
