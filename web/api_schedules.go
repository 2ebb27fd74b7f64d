package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/internal/humantime"
	"github.com/mica-pki/mica/inventory"
)

// parseInterval reads a schedule interval as the API and the UI print it
// ("1d12h", "7d", "6h", "90m") or as a Go duration ("24h0m0s"), so a
// schedule's interval can be read and sent back unchanged.
func parseInterval(v string) (time.Duration, error) {
	d, err := humantime.Parse(v)
	if err != nil {
		return 0, errors.New("interval must look like 30m, 1h, 24h, 7d or 1d12h")
	}
	return d, nil
}

// newSchedule validates a schedule and vets its targets against the scan
// allow-list. A refused target is ErrInvalid with the allow-list's
// message, so the caller gets a 400 saying which target and why; refused
// tells the caller to audit the refusal.
func (s *Server) newSchedule(spec inventory.JobSpec, interval string, enabled bool) (sc inventory.Schedule, refused bool, err error) {
	d, err := parseInterval(interval)
	if err != nil {
		return sc, false, fmt.Errorf("%w: %v", inventory.ErrInvalid, err)
	}
	sc = inventory.Schedule{Kind: "scan", Spec: spec, Interval: d, Enabled: enabled}
	if err := inventory.ValidateSchedule(sc); err != nil {
		return sc, false, err
	}
	if s.checkJob != nil {
		if err := s.checkJob("scan", spec); err != nil {
			return sc, true, fmt.Errorf("%w: %v", inventory.ErrInvalid, err)
		}
	}
	return sc, false, nil
}

// listSchedules: GET /api/v1/discovery/schedules
func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) {
	scs, err := s.store.Schedules(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if scs == nil {
		scs = []inventory.Schedule{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": scs})
}

// createSchedule: POST /api/v1/discovery/schedules (operator)
// {"targets": ["127.0.0.1"], "ports": [443], "interval": "24h", "enabled": true}
func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Targets  []string `json:"targets"`
		Ports    []int    `json:"ports"`
		Interval string   `json:"interval"`
		Enabled  *bool    `json:"enabled"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	enabled := body.Enabled == nil || *body.Enabled
	sc, refused, err := s.newSchedule(inventory.JobSpec{Targets: body.Targets, Ports: body.Ports}, body.Interval, enabled)
	if err != nil {
		if refused {
			s.audit(r, inventory.Event{Action: "discovery.schedule.create", Object: "schedule:new", Outcome: "denied",
				Details: jsonDetails(map[string]string{"error": err.Error()})})
		}
		s.fail(w, r, err)
		return
	}
	ev := s.apiEvent(r)
	out, err := s.store.CreateSchedule(r.Context(), sc, ev)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func scheduleID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	return id, err == nil && id > 0
}

// getSchedule: GET /api/v1/discovery/schedules/{id}
func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) {
	id, ok := scheduleID(r)
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	sc, err := s.store.Schedule(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sc)
}

// patchSchedule: PATCH /api/v1/discovery/schedules/{id} (operator)
// {"enabled": false} pauses, {"enabled": true} resumes.
func (s *Server) patchSchedule(w http.ResponseWriter, r *http.Request) {
	id, ok := scheduleID(r)
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Enabled == nil {
		writeError(w, http.StatusBadRequest, `want {"enabled": true|false}`)
		return
	}
	ev := s.apiEvent(r)
	sc, err := s.store.SetScheduleEnabled(r.Context(), id, *body.Enabled, ev)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sc)
}

// deleteSchedule: DELETE /api/v1/discovery/schedules/{id} (operator)
func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	id, ok := scheduleID(r)
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	ev := s.apiEvent(r)
	if err := s.store.DeleteSchedule(r.Context(), id, ev); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": id})
}
