package web

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// The credentials page is parsed with the others (pageNames), and its
// redirects have fixed flash messages.
func init() {
	pageNames = append(pageNames, "credentials")
	flashes["est-token-revoked"] = "EST enrollment token revoked."
	flashes["eab-key-revoked"] = "EAB key revoked."
}

// credentialsData feeds credentials.html. NewToken and NewEABKey are set
// only on the answer to the creation, the one time the secret is shown.
type credentialsData struct {
	Tokens      []estTokenView
	TokenLabels []string
	EABKeys     []eabKeyView
	EABProfiles []string
	Profiles    []profileView
	NewToken    *createdToken
	NewEABKey   *createdEABKey
	// Missing names the sections this server cannot show (not wired or
	// the store failed); the rest of the page still renders.
	Missing []string
}

// mountUICredentials registers /ui/admin/credentials (admin only).
func (s *Server) mountUICredentials(r chi.Router) {
	r.Get("/admin/credentials", s.uiRequire(s.credentialsPage))
	r.Post("/admin/credentials/est-tokens", s.uiRequire(s.uiCreateESTToken))
	r.Post("/admin/credentials/est-tokens/{id}/revoke", s.uiRequire(s.uiRevokeESTToken))
	r.Post("/admin/credentials/eab-keys", s.uiRequire(s.uiCreateEABKey))
	r.Post("/admin/credentials/eab-keys/{kid}/revoke", s.uiRequire(s.uiRevokeEABKey))
}

// credentialsPage: GET /ui/admin/credentials — EST tokens, EAB keys and
// the issuance profiles.
func (s *Server) credentialsPage(w http.ResponseWriter, r *http.Request) {
	s.renderCredentials(w, r, http.StatusOK, "", credentialsData{})
}

func (s *Server) renderCredentials(w http.ResponseWriter, r *http.Request, status int, errMsg string, d credentialsData) {
	ctx := r.Context()
	if t := s.creds.tokens; t == nil {
		d.Missing = append(d.Missing, "EST tokens")
	} else if ts, err := t.Tokens(ctx); err != nil {
		s.log.Error("list EST tokens", "err", err)
		d.Missing = append(d.Missing, "EST tokens")
	} else {
		d.TokenLabels = t.TokenLabels()
		for _, tok := range ts {
			d.Tokens = append(d.Tokens, tokenView(tok, s.now()))
		}
	}
	if e := s.creds.eab; e == nil {
		d.Missing = append(d.Missing, "EAB keys")
	} else if ks, err := e.EABKeys(ctx); err != nil {
		s.log.Error("list EAB keys", "err", err)
		d.Missing = append(d.Missing, "EAB keys")
	} else {
		d.EABProfiles = e.EABProfiles()
		for _, k := range ks {
			d.EABKeys = append(d.EABKeys, eabView(k))
		}
	}
	if ps, err := s.profileViews(); err != nil {
		d.Missing = append(d.Missing, "profiles")
	} else {
		d.Profiles = ps
	}
	// The answer to a creation carries a secret: never cached.
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "credentials", "Credentials", errMsg, d)
}

// uiCreateESTToken: POST /ui/admin/credentials/est-tokens (label, names
// comma- or line-separated, ttl). The credential is shown on this answer
// only: no redirect, so it is never in a URL.
func (s *Server) uiCreateESTToken(w http.ResponseWriter, r *http.Request) {
	var names []string
	for _, n := range strings.FieldsFunc(r.PostFormValue("names"), func(c rune) bool { return c == ',' || c == '\n' || c == '\r' }) {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	out, err := s.newESTToken(r.Context(), r.PostFormValue("label"), names, strings.TrimSpace(r.PostFormValue("ttl")), s.uiEvent(r))
	if err != nil {
		s.uiCredentialError(w, r, err)
		return
	}
	s.renderCredentials(w, r, http.StatusCreated, "", credentialsData{NewToken: out})
}

// uiRevokeESTToken: POST /ui/admin/credentials/est-tokens/{id}/revoke.
func (s *Server) uiRevokeESTToken(w http.ResponseWriter, r *http.Request) {
	if s.creds.tokens == nil {
		s.uiCredentialError(w, r, errNotConfigured)
		return
	}
	if err := s.creds.tokens.RevokeToken(r.Context(), chi.URLParam(r, "id"), s.uiEvent(r)); err != nil {
		s.uiCredentialError(w, r, err)
		return
	}
	redirectDone(w, r, "/ui/admin/credentials", "est-token-revoked")
}

// uiCreateEABKey: POST /ui/admin/credentials/eab-keys (profile). The HMAC
// key is shown on this answer only.
func (s *Server) uiCreateEABKey(w http.ResponseWriter, r *http.Request) {
	out, err := s.newEABKey(r.Context(), r.PostFormValue("profile"), s.uiEvent(r))
	if err != nil {
		s.uiCredentialError(w, r, err)
		return
	}
	s.renderCredentials(w, r, http.StatusCreated, "", credentialsData{NewEABKey: out})
}

// uiRevokeEABKey: POST /ui/admin/credentials/eab-keys/{kid}/revoke.
func (s *Server) uiRevokeEABKey(w http.ResponseWriter, r *http.Request) {
	if s.creds.eab == nil {
		s.uiCredentialError(w, r, errNotConfigured)
		return
	}
	if err := s.creds.eab.RevokeEABKey(r.Context(), chi.URLParam(r, "kid"), s.uiEvent(r)); err != nil {
		s.uiCredentialError(w, r, err)
		return
	}
	redirectDone(w, r, "/ui/admin/credentials", "eab-key-revoked")
}

// uiCredentialError shows the page again with err's status and message;
// anything unrecognised is logged with its cause (which never holds a
// secret: the secret is made after validation and only returned).
func (s *Server) uiCredentialError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status == http.StatusInternalServerError {
		s.log.Error("credential action failed", "path", r.URL.Path, "err", err)
	}
	s.renderCredentials(w, r, status, credentialMessage(err), credentialsData{})
}
