package web

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"

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
	ev := s.apiEvent(r)
	if err := s.store.CreateUser(r.Context(), inventory.User{Name: body.Name, Role: body.Role, PasswordHash: hash}, ev); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"name": body.Name, "role": body.Role})
}

// jsonDetails marshals audit event details.
func jsonDetails(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// newPassword returns a random password (128 bits, URL-safe), shown once
// to the admin who reset it.
func newPassword() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// getUser: GET /api/v1/users/{name} (admin)
func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.store.User(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// patchUser: PATCH /api/v1/users/{name} (admin) {"role": "viewer"} and/or
// {"disabled": true}. Either change ends the user's sessions; demoting or
// disabling the last enabled admin is 409.
func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	var body struct {
		Role     *string `json:"role"`
		Disabled *bool   `json:"disabled"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Role == nil && body.Disabled == nil {
		writeError(w, http.StatusBadRequest, `want {"role": …} and/or {"disabled": true|false}`)
		return
	}
	if body.Role != nil && !inventory.ValidRole(*body.Role) {
		writeError(w, http.StatusBadRequest, "role must be admin, operator, viewer or auditor")
		return
	}
	if body.Role != nil {
		if err := s.store.SetUserRole(r.Context(), name, *body.Role, s.apiEvent(r)); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if body.Disabled != nil {
		if err := s.store.SetUserDisabled(r.Context(), name, *body.Disabled, s.apiEvent(r)); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.getUser(w, r)
}

// resetPassword: POST /api/v1/users/{name}/password (admin)
// {"password": "…"} sets it; {} generates one and returns it, once. The
// user's sessions end either way.
func (s *Server) resetPassword(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Password string `json:"password"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	generated := body.Password == ""
	if generated {
		var err error
		if body.Password, err = newPassword(); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	hash, err := HashPassword(body.Password)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ev := s.apiEvent(r)
	ev.Details = jsonDetails(map[string]bool{"generated": generated})
	if err := s.store.SetUserPassword(r.Context(), chi.URLParam(r, "name"), hash, ev); err != nil {
		s.fail(w, r, err)
		return
	}
	out := map[string]string{"name": chi.URLParam(r, "name")}
	if generated {
		out["password"] = body.Password
	}
	writeJSON(w, http.StatusOK, out)
}

// deleteUser: DELETE /api/v1/users/{name} (admin); 409 for the last
// enabled admin.
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	ev := s.apiEvent(r)
	if err := s.store.DeleteUser(r.Context(), name, ev); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}
