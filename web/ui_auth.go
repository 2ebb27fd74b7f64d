package web

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/mica-pki/mica/inventory"
)

// MinPasswordLength is the shortest password HashPassword accepts.
const MinPasswordLength = 12

// HashPassword returns the bcrypt hash stored for a UI user.
func HashPassword(pw string) (string, error) {
	if utf8.RuneCountInString(pw) < MinPasswordLength {
		return "", fmt.Errorf("password must be at least %d characters", MinPasswordLength)
	}
	if len(pw) > 72 {
		return "", errors.New("password must be at most 72 bytes (bcrypt)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// bcryptCost is bcrypt's work factor; tests lower it (export_test.go).
var bcryptCost = bcrypt.DefaultCost

// dummyHash is compared against when the user does not exist, so the
// answer takes as long as for a wrong password.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("not a real password, only for timing"), bcryptCost)
	return h
})

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if uiUser(r.Context()) != nil {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", "Log in", "", nil)
}

// login checks the password (bcrypt, constant work for unknown users),
// throttles by locking an account after repeated failures, starts a
// server-side session and audits the attempt either way.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	name, pw := r.PostFormValue("name"), r.PostFormValue("password")
	if s.throttledSource(w, r, name) {
		return
	}
	u, err := s.store.User(r.Context(), name)
	if err != nil && !isNotFound(err) {
		s.log.Error("login: read user", "err", err)
		s.render(w, r, http.StatusServiceUnavailable, "login", "Log in", "Try again later.", nil)
		return
	}
	deny := func(why string) {
		s.uiAudit(r, inventory.Event{Actor: "user:" + truncate(name, 64), Action: inventory.ActionLogin, Object: "user:" + truncate(name, 64), Outcome: "denied",
			Details: []byte(fmt.Sprintf(`{"why":%q}`, why))})
		s.render(w, r, http.StatusUnauthorized, "login", "Log in", "Wrong user name or password, or the account is locked for a minute.", nil)
	}
	if u == nil {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(pw))
		deny("unknown user")
		return
	}
	if u.DisabledAt != nil {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(pw))
		deny("disabled")
		return
	}
	if u.LockedUntil != nil && s.now().Before(*u.LockedUntil) {
		deny("locked")
		return
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(pw)) != nil {
		if err := s.store.LoginResult(r.Context(), u.Name, false); err != nil {
			s.log.Error("login: record failure", "err", err)
		}
		deny("wrong password")
		return
	}
	if err := s.store.LoginResult(r.Context(), u.Name, true); err != nil {
		s.log.Error("login: record success", "err", err)
	}
	tok, err := s.store.CreateSession(r.Context(), u.Name, SessionTTL)
	if err != nil {
		s.log.Error("login: create session", "err", err)
		s.render(w, r, http.StatusServiceUnavailable, "login", "Log in", "Try again later.", nil)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: tok, Path: "/ui", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Expires: s.now().Add(SessionTTL)})
	s.uiAudit(r, inventory.Event{Actor: "user:" + u.Name, Action: "ui.login", Object: "user:" + u.Name})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		_ = s.store.DeleteSession(r.Context(), c.Value)
		if uiUser(r.Context()) != nil {
			s.uiAudit(r, inventory.Event{Action: "ui.logout", Object: "user:" + uiUser(r.Context()).Name})
		}
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/ui", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Expires: time.Unix(0, 0), MaxAge: -1})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
