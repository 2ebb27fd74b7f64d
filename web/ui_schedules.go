package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/mica-pki/mica/inventory"
)

// uiCreateSchedule: POST /ui/discovery/schedules (targets, ports,
// interval, enabled). Targets outside the scan allow-list are refused
// now (400), and again each time the schedule runs.
func (s *Server) uiCreateSchedule(w http.ResponseWriter, r *http.Request) {
	spec := inventory.JobSpec{}
	for _, t := range strings.Split(r.PostFormValue("targets"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			spec.Targets = append(spec.Targets, t)
		}
	}
	for _, p := range strings.Split(r.PostFormValue("ports"), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			s.render(w, r, http.StatusBadRequest, "list", "Discovery", "Ports must be numbers from 1 to 65535.", listData{})
			return
		}
		spec.Ports = append(spec.Ports, n)
	}
	sc, refused, err := s.newSchedule(spec, r.PostFormValue("interval"), r.PostFormValue("enabled") == "true")
	if err != nil {
		if refused {
			s.uiAudit(r, inventory.Event{Action: "discovery.schedule.create", Object: "schedule:new", Outcome: "denied",
				Details: jsonDetails(map[string]string{"error": err.Error()})})
		}
		s.render(w, r, statusOf(err), "list", "Discovery", messageOf(err), listData{})
		return
	}
	ev := s.uiEvent(r)
	if _, err := s.store.CreateSchedule(r.Context(), sc, ev); err != nil {
		s.render(w, r, statusOf(err), "list", "Discovery", messageOf(err), listData{})
		return
	}
	redirectDone(w, r, "/ui/discovery", "scheduled")
}

// uiScheduleAction: POST /ui/discovery/schedules/{id}/{pause|resume|delete}.
func (s *Server) uiScheduleAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := scheduleID(r)
		if !ok {
			s.render(w, r, http.StatusNotFound, "list", "Discovery", "not found", listData{})
			return
		}
		ev := s.uiEvent(r)
		var err error
		switch action {
		case "pause", "resume":
			_, err = s.store.SetScheduleEnabled(r.Context(), id, action == "resume", ev)
		default:
			err = s.store.DeleteSchedule(r.Context(), id, ev)
		}
		if err != nil {
			s.render(w, r, statusOf(err), "list", "Discovery", messageOf(err), listData{})
			return
		}
		redirectDone(w, r, "/ui/discovery", "schedule-"+action)
	}
}
