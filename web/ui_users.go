package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
)

type usersData struct {
	Users                       []userRow
	Roles                       []string
	NewPassword, NewPasswordFor string
}

type userRow struct {
	Name, Role, Status, Created string
	Disabled                    bool
}

var roleNames = []string{inventory.RoleViewer, inventory.RoleOperator, inventory.RoleAuditor, inventory.RoleAdmin}

// usersPage: GET /ui/users (admin) — accounts, roles and the forms that
// manage them.
func (s *Server) usersPage(w http.ResponseWriter, r *http.Request) {
	s.renderUsers(w, r, http.StatusOK, "", usersData{})
}

func (s *Server) renderUsers(w http.ResponseWriter, r *http.Request, status int, errMsg string, d usersData) {
	us, err := s.store.Users(r.Context())
	if err != nil {
		s.render(w, r, statusOf(err), "list", "Users", messageOf(err), listData{})
		return
	}
	d.Roles = roleNames
	for _, u := range us {
		row := userRow{Name: u.Name, Role: u.Role, Status: "active", Created: u.CreatedAt.UTC().Format("2006-01-02"), Disabled: u.DisabledAt != nil}
		switch {
		case u.DisabledAt != nil:
			row.Status = "disabled since " + u.DisabledAt.UTC().Format("2006-01-02")
		case u.LockedUntil != nil && u.LockedUntil.After(s.now()):
			row.Status = "locked until " + u.LockedUntil.UTC().Format(time.DateTime)
		}
		d.Users = append(d.Users, row)
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "users", "Users", errMsg, d)
}

// uiCreateUser: POST /ui/users (name, role, password; an empty password
// generates one, shown once).
func (s *Server) uiCreateUser(w http.ResponseWriter, r *http.Request) {
	name, role, pw := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("role"), r.PostFormValue("password")
	if !inventory.ValidRole(role) {
		s.renderUsers(w, r, http.StatusBadRequest, "Role must be admin, operator, viewer or auditor.", usersData{})
		return
	}
	d := usersData{}
	if pw == "" {
		var err error
		if pw, err = newPassword(); err != nil {
			s.renderUsers(w, r, http.StatusInternalServerError, "internal error", usersData{})
			return
		}
		d.NewPassword, d.NewPasswordFor = pw, name
	}
	hash, err := HashPassword(pw)
	if err != nil {
		s.renderUsers(w, r, http.StatusBadRequest, err.Error(), usersData{})
		return
	}
	if err := s.store.CreateUser(r.Context(), inventory.User{Name: name, Role: role, PasswordHash: hash}, s.uiEvent(r)); err != nil {
		s.renderUsers(w, r, statusOf(err), messageOf(err), usersData{})
		return
	}
	if d.NewPassword == "" {
		redirectDone(w, r, "/ui/users", "user-saved")
		return
	}
	s.renderUsers(w, r, http.StatusOK, "", d)
}

// uiUserAction: POST /ui/users/{name}/{role|password|disable|enable|delete}.
// Every change ends the user's sessions; the last enabled admin is
// protected (409).
func (s *Server) uiUserAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "name")
		var err error
		d := usersData{}
		switch action {
		case "role":
			role := r.PostFormValue("role")
			if !inventory.ValidRole(role) {
				s.renderUsers(w, r, http.StatusBadRequest, "Role must be admin, operator, viewer or auditor.", d)
				return
			}
			err = s.store.SetUserRole(r.Context(), name, role, s.uiEvent(r))
		case "password":
			pw := r.PostFormValue("password")
			generated := pw == ""
			if generated {
				if pw, err = newPassword(); err != nil {
					break
				}
			}
			hash, herr := HashPassword(pw)
			if herr != nil {
				s.renderUsers(w, r, http.StatusBadRequest, herr.Error(), d)
				return
			}
			ev := s.uiEvent(r)
			ev.Details = jsonDetails(map[string]bool{"generated": generated})
			if err = s.store.SetUserPassword(r.Context(), name, hash, ev); err == nil && generated {
				d.NewPassword, d.NewPasswordFor = pw, name
			}
		case "disable", "enable":
			err = s.store.SetUserDisabled(r.Context(), name, action == "disable", s.uiEvent(r))
		case "delete":
			err = s.store.DeleteUser(r.Context(), name, s.uiEvent(r))
		}
		if err != nil {
			s.renderUsers(w, r, statusOf(err), messageOf(err), usersData{})
			return
		}
		if d.NewPassword != "" {
			s.renderUsers(w, r, http.StatusOK, "", d)
			return
		}
		redirectDone(w, r, "/ui/users", "user-saved")
	}
}
