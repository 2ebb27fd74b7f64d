package acme

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-jose/go-jose/v4"

	"github.com/mica-pki/mica/inventory"
)

// keyChange rolls an account over to a new key (RFC 8555 section 7.3.5).
// The outer JWS is signed by the current key (kid); its payload is an
// inner JWS signed by the new key (jwk), with the same url and no nonce,
// whose payload names the account and its old key.
func (s *Server) keyChange(w http.ResponseWriter, req *request) error {
	if req.postAsGet {
		return malformed("keyChange needs an inner JWS")
	}
	inner, p := parseProtected(req.payload)
	if p != nil {
		return p
	}
	switch {
	case len(inner.JWK) == 0 || inner.Kid != "":
		return malformed("the inner JWS must have a jwk and no kid")
	case inner.Nonce != "":
		return malformed("the inner JWS must not have a nonce")
	case inner.URL != req.url:
		return malformed("the inner JWS url must equal the outer url")
	}
	newKey, p := parseJWK(inner.JWK)
	if p != nil {
		return p
	}
	payload, p := verifySignature(req.payload, newKey)
	if p != nil {
		return p
	}
	var in struct {
		Account string          `json:"account"`
		OldKey  json.RawMessage `json:"oldKey"`
	}
	if err := json.Unmarshal(payload, &in); err != nil {
		return malformed("the inner payload must be {account, oldKey}")
	}
	acct := req.account
	url := s.accountURL(req.Request, acct.ID)
	if in.Account != url {
		return unauthorized("the inner payload names another account")
	}
	var old jose.JSONWebKey
	if err := old.UnmarshalJSON(in.OldKey); err != nil {
		return malformed("oldKey is not a JWK")
	}
	if tp, err := thumbprint(&old); err != nil || tp != acct.Thumbprint {
		return unauthorized("oldKey is not the account's current key")
	}
	tp, err := thumbprint(newKey)
	if err != nil {
		return internal(err)
	}
	if other, err := s.store.ACMEAccount(req.Context(), inventory.ACMEAccountFilter{Thumbprint: tp}); err == nil {
		p := problem(probMalformed, http.StatusConflict, "the new key already belongs to an account")
		p.location = s.accountURL(req.Request, other.ID)
		return p
	}
	jwk, err := newKey.MarshalJSON()
	if err != nil {
		return internal(err)
	}
	acct.JWK, acct.Thumbprint = string(jwk), tp
	if err := s.store.UpdateACMEAccount(req.Context(), acct, s.event(req, "acme.account.keychange", url)); err != nil {
		switch {
		case errors.Is(err, inventory.ErrDuplicate):
			return problem(probMalformed, http.StatusConflict, "the new key already belongs to an account")
		case errors.Is(err, inventory.ErrConflict):
			return accountNotValid("no longer valid")
		}
		return internal(err)
	}
	writeJSON(w, http.StatusOK, url, s.accountObject(req.Request, acct))
	return nil
}
