package web

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
)

// JobChecker vets a discovery job before it is queued (the scan target
// allow-list), so a refused target is a 403 now rather than an error in
// the job later. The scanner enforces the same list again when it runs.
type JobChecker func(kind string, spec inventory.JobSpec) error

// WithJobChecker sets the check applied to new discovery jobs.
func (s *Server) WithJobChecker(c JobChecker) *Server {
	s.checkJob = c
	return s
}

// refuseJob audits a discovery job refused before it was queued.
func (s *Server) refuseJob(r *http.Request, kind, why string) {
	details, _ := json.Marshal(map[string]string{"kind": kind, "why": truncate(why, 500)})
	s.audit(r, inventory.Event{Action: "discovery.create", Object: "discovery:new", Outcome: "denied", Details: details})
}

// listJobs: GET /api/v1/discovery/jobs[?before=ID&limit=N]
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	before, limit, ok := paging(w, r)
	if !ok {
		return
	}
	jobs, err := s.store.DiscoveryJobs(r.Context(), before, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
}

// getJob: GET /api/v1/discovery/jobs/{id}
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	j, err := s.store.DiscoveryJob(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// createJob: POST /api/v1/discovery/jobs
// {"kind": "scan", "targets": ["127.0.0.1"], "ports": [443]} or
// {"kind": "files", "paths": ["/etc/ssl"]}. Queued, then run by whichever
// replica claims it; audited by the store.
func (s *Server) createJob(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Kind string `json:"kind"`
		inventory.JobSpec
	}
	if !decodeBody(w, r, &body) {
		return
	}
	switch {
	case body.Kind == "scan" && len(body.Targets) > 0 && len(body.Targets) <= 256 && len(body.Ports) <= 64:
	case body.Kind == "files" && len(body.Paths) > 0 && len(body.Paths) <= 256:
	default:
		writeError(w, http.StatusBadRequest, `want {"kind":"scan","targets":[…],"ports":[…]} or {"kind":"files","paths":[…]}`)
		return
	}
	// File jobs read the server's file system: admins only, and only
	// under discovery.file_roots (the checker, discover.Fence). Without a
	// checker nothing vets paths, so file jobs are refused outright.
	if body.Kind == "files" {
		if p := principalOf(r.Context()); p.Role != inventory.RoleAdmin {
			s.refuseJob(r, body.Kind, "file discovery needs the admin role")
			writeError(w, http.StatusForbidden, "role "+p.Role+" may not run file discovery: it needs admin")
			return
		}
		if s.checkJob == nil {
			s.refuseJob(r, body.Kind, "file discovery is disabled")
			writeError(w, http.StatusBadRequest, "file discovery is disabled on this server")
			return
		}
	}
	if s.checkJob != nil {
		if err := s.checkJob(body.Kind, body.JobSpec); err != nil {
			s.refuseJob(r, body.Kind, err.Error())
			code := http.StatusForbidden // a scan target off the allow-list
			if body.Kind == "files" {
				code = http.StatusBadRequest
			}
			writeError(w, code, err.Error())
			return
		}
	}
	ev := s.apiEvent(r)
	j, err := s.store.CreateDiscoveryJob(r.Context(), body.Kind, body.JobSpec, ev)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, j)
}

// listDiscovered: GET /api/v1/discovered[?external=true&q=…&limit=N]
func (s *Server) listDiscovered(w http.ResponseWriter, r *http.Request) {
	_, limit, ok := paging(w, r)
	if !ok {
		return
	}
	ext := r.URL.Query().Get("external")
	ds, err := s.store.FindDiscovered(r.Context(), inventory.DiscoveredFilter{External: ext == "true" || ext == "1",
		Text: r.URL.Query().Get("q"), Limit: limit})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for i := range ds {
		ds[i].Serial = inventory.FormatSerial(ds[i].Serial) // as everywhere: openssl's spelling
	}
	writeJSON(w, http.StatusOK, map[string]any{"discovered": ds})
}

// paging reads ?before=ID&limit=N.
func paging(w http.ResponseWriter, r *http.Request) (before int64, limit int, ok bool) {
	q := r.URL.Query()
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "before must be a positive id")
			return 0, 0, false
		}
		before = n
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be from 1 to 1000")
			return 0, 0, false
		}
		limit = n
	}
	return before, limit, true
}
