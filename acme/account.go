package acme

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
)

// accountJSON is an account object (RFC 8555 section 7.1.2).
type accountJSON struct {
	Status  string   `json:"status"`
	Contact []string `json:"contact,omitempty"`
	Orders  string   `json:"orders"`
	EAB     any      `json:"externalAccountBinding,omitempty"`
}

func (s *Server) accountObject(r *http.Request, a *inventory.ACMEAccount) accountJSON {
	return accountJSON{Status: a.Status, Contact: a.Contact, Orders: s.url(r, "acct", a.ID, "orders")}
}

// checkContacts accepts mailto: URLs with one plain address each.
func checkContacts(cs []string) *Problem {
	if len(cs) > 10 {
		return problem(probInvalidContact, http.StatusBadRequest, "at most 10 contacts")
	}
	for _, c := range cs {
		addr, ok := strings.CutPrefix(c, "mailto:")
		if !ok {
			return problem(probUnsupportedContact, http.StatusBadRequest, "only mailto: contacts are supported")
		}
		if a, err := mail.ParseAddress(addr); err != nil || a.Address != addr || strings.ContainsAny(addr, "?,") {
			return problem(probInvalidContact, http.StatusBadRequest, "contact %q is not one plain e-mail address", c)
		}
	}
	return nil
}

// newAccount creates an account or finds the one of the request's key
// (RFC 8555 section 7.3), binding an external account when sent.
func (s *Server) newAccount(w http.ResponseWriter, req *request) error {
	var in struct {
		Contact              []string        `json:"contact"`
		TermsOfServiceAgreed bool            `json:"termsOfServiceAgreed"`
		OnlyReturnExisting   bool            `json:"onlyReturnExisting"`
		EAB                  json.RawMessage `json:"externalAccountBinding"`
	}
	if p := decodePayload(req, &in); p != nil {
		return p
	}
	ctx := req.Context()
	tp, err := thumbprint(req.jwk)
	if err != nil {
		return internal(err)
	}
	existing, err := s.store.ACMEAccount(ctx, inventory.ACMEAccountFilter{Thumbprint: tp})
	switch {
	case err == nil && existing.Profile == chiProfile(req.Request):
		if existing.Status != inventory.ACMEAccountValid {
			return accountNotValid(existing.Status)
		}
		writeJSON(w, http.StatusOK, s.accountURL(req.Request, existing.ID), s.accountObject(req.Request, existing))
		return nil
	case err == nil:
		return malformed("this key already belongs to an account of another ACME directory")
	case !errors.Is(err, inventory.ErrNotFound):
		return internal(err)
	}
	if in.OnlyReturnExisting {
		return problem(probAccountDoesNotExist, http.StatusBadRequest, "no account exists for this key")
	}
	if p := checkContacts(in.Contact); p != nil {
		return p
	}
	prof := s.profile(req.Request)
	acct := &inventory.ACMEAccount{ID: randomID(), Thumbprint: tp, Status: inventory.ACMEAccountValid, Contact: in.Contact,
		Profile: chiProfile(req.Request), Source: remoteIP(req.Request)}
	jwk, err := req.jwk.MarshalJSON()
	if err != nil {
		return internal(err)
	}
	acct.JWK = string(jwk)
	switch {
	case len(in.EAB) > 0 && prof.EAB != EABNone:
		kid, p := s.verifyEAB(req, in.EAB)
		if p != nil {
			return p
		}
		acct.EABKeyID = kid
	case prof.EAB == EABRequired:
		return problem(probExternalAccountReq, http.StatusUnauthorized, "this directory requires external account binding")
	}
	if lim := s.opts.Limits.AccountsPerIPPerHour; lim > 0 {
		n, err := s.store.CountACMEAccounts(ctx, inventory.ACMEAccountFilter{Source: acct.Source, Since: s.now().Add(-time.Hour)})
		if err != nil {
			return internal(err)
		}
		if n >= lim {
			return rateLimited("too many new accounts from %s in the last hour (limit %d)", acct.Source, lim)
		}
	}
	url := s.accountURL(req.Request, acct.ID)
	ev := s.event(req, "acme.account.create", url)
	ev.Actor = url
	if err := s.store.CreateACMEAccount(ctx, acct, ev); err != nil {
		switch {
		case errors.Is(err, inventory.ErrConflict):
			return unauthorized("the external account key is unknown or already bound to an account")
		case errors.Is(err, inventory.ErrDuplicate):
			// Another request created the account for this key first.
			return malformed("an account for this key was created concurrently; retry")
		}
		return internal(err)
	}
	writeJSON(w, http.StatusCreated, url, s.accountObject(req.Request, acct))
	return nil
}

func rateLimited(format string, args ...any) *Problem {
	p := problem(probRateLimited, http.StatusTooManyRequests, format, args...)
	p.retryAfter = 600
	return p
}

// event is the audit event of an ACME action: the account URL (or, for
// jwk requests, "acme:jwk") acts from the client's address.
func (s *Server) event(req *request, action, object string) inventory.Event {
	actor := "acme:jwk"
	if req.account != nil {
		actor = s.accountURL(req.Request, req.account.ID)
	}
	return inventory.Event{Actor: actor, Action: action, Protocol: "acme", Source: remoteIP(req.Request), Object: object, Outcome: "ok"}
}

// account answers POST /acct/{id}: POST-as-GET reads it, a payload
// updates the contacts or deactivates it (RFC 8555 sections 7.3.2, 7.3.6).
func (s *Server) account(w http.ResponseWriter, req *request) error {
	if chi.URLParam(req.Request, "id") != req.account.ID {
		return unauthorized("the kid is not this account")
	}
	acct := req.account
	url := s.accountURL(req.Request, acct.ID)
	if req.postAsGet {
		writeJSON(w, http.StatusOK, url, s.accountObject(req.Request, acct))
		return nil
	}
	var in struct {
		Contact *[]string `json:"contact"`
		Status  string    `json:"status"`
	}
	if p := decodePayload(req, &in); p != nil {
		return p
	}
	action := "acme.account.update"
	if in.Contact != nil {
		if p := checkContacts(*in.Contact); p != nil {
			return p
		}
		acct.Contact = *in.Contact
	}
	switch in.Status {
	case "", inventory.ACMEAccountValid:
	case inventory.ACMEAccountDeactivated:
		acct.Status, action = inventory.ACMEAccountDeactivated, "acme.account.deactivate"
	default:
		return malformed("a client may only set status to deactivated")
	}
	if err := s.store.UpdateACMEAccount(req.Context(), acct, s.event(req, action, url)); err != nil {
		if errors.Is(err, inventory.ErrConflict) {
			return accountNotValid("no longer valid")
		}
		return internal(err)
	}
	writeJSON(w, http.StatusOK, url, s.accountObject(req.Request, acct))
	return nil
}

// accountOrders lists the account's orders, newest first (section 7.1.2.1).
func (s *Server) accountOrders(w http.ResponseWriter, req *request) error {
	if chi.URLParam(req.Request, "id") != req.account.ID {
		return unauthorized("the kid is not this account")
	}
	os, err := s.store.FindACMEOrders(req.Context(), inventory.ACMEOrderFilter{AccountID: req.account.ID, Limit: 1000})
	if err != nil {
		return internal(err)
	}
	urls := make([]string, 0, len(os))
	for _, o := range os {
		urls = append(urls, s.url(req.Request, "order", o.ID))
	}
	writeJSON(w, http.StatusOK, "", map[string]any{"orders": urls})
	return nil
}
