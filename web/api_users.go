package web

import (
	"net/http"

	"github.com/mica-pki/mica/inventory"
)

// listUsers: GET /api/v1/users (admin) — UI accounts and their roles.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	us, err := s.store.Users(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if us == nil {
		us = []inventory.User{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": us})
}

// createUser: POST /api/v1/users (admin) {"name", "role", "password"}.
// The password is hashed here (bcrypt) and never stored or logged; the
// creation is audited by the store.
func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		Password string `json:"password"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if !inventory.ValidRole(body.Role) {
		writeError(w, http.StatusBadRequest, "role must be admin, operator, viewer or auditor")
		return
	}
	hash, err := HashPassword(body.Password)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ev := inventory.Event{Actor: principalOf(r.Context()).Name, Protocol: "api", Source: sourceOf(r), Outcome: "ok"}
	if err := s.store.CreateUser(r.Context(), inventory.User{Name: body.Name, Role: body.Role, PasswordHash: hash}, ev); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"name": body.Name, "role": body.Role})
}
