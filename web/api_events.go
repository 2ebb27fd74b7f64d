package web

import (
	"net/http"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// listEvents: GET /api/v1/events[?action=cert.&actor=…&object=…&since=RFC3339&before=ID&limit=N]
// The audit log, newest first; auditors and admins only.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	before, limit, ok := paging(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := inventory.EventFilter{Action: q.Get("action"), Actor: q.Get("actor"), Object: q.Get("object"), Before: before, Limit: limit}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "since must be an RFC 3339 time")
			return
		}
		f.Since = t
	}
	evs, err := s.store.Events(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for i := range evs {
		// Stored objects keep the canonical serial; people and scripts
		// get the one printed form (and may filter with it).
		evs[i].Object = inventory.FormatObject(evs[i].Object)
	}
	out := map[string]any{"events": evs}
	if len(evs) > 0 && (limit == 0 || len(evs) == limit) {
		out["next_before"] = evs[len(evs)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}
