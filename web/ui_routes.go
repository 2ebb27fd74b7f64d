package web

import (
	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
)

// mountUIAdmin registers the UI's label, bulk, schedule and user
// management forms (all POST, behind CrossOriginProtection and the
// session like the rest of /ui/). Operators act on certificates and
// discovery; only admins manage users.
func (s *Server) mountUIAdmin(r chi.Router) {
	op := inventory.RoleOperator
	r.Post("/certificates/bulk", s.uiRequire(s.uiBulk, op))
	r.Post("/certificates/{issuer}/{serial}/labels", s.uiRequire(s.uiLabels, op))
	r.Post("/discovery/schedules", s.uiRequire(s.uiCreateSchedule, op))
	for _, a := range []string{"pause", "resume", "delete"} {
		r.Post("/discovery/schedules/{id}/"+a, s.uiRequire(s.uiScheduleAction(a), op))
	}
	r.Post("/users", s.uiRequire(s.uiCreateUser))
	for _, a := range []string{"role", "password", "disable", "enable", "delete"} {
		r.Post("/users/{name}/"+a, s.uiRequire(s.uiUserAction(a)))
	}
}
