package acme

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-jose/go-jose/v4"

	"github.com/mica-pki/mica/inventory"
)

// External account binding (RFC 8555 section 7.3.4). An operator creates
// a key ID and HMAC key with `mica acme eab create`; the HMAC key is shown
// once and stored only sealed by an [EABSealer]: AES-256-GCM under a key
// derived from an HSM signature (eab_seal.go), so neither a database dump
// nor the dump together with the PIN or passphrase can bind accounts, and
// every replica that can use the HSM can open it. A key binds one
// account, once.

// EABStore is what CreateEABKey needs.
type EABStore interface {
	CreateACMEEABKey(ctx context.Context, k *inventory.ACMEEABKey, ev inventory.Event) error
}

// CreateEABKey makes a new EAB key for an ACME profile, stores it sealed
// by sealer and returns the key ID and the base64url HMAC key, which
// exists nowhere else afterwards. ev names who asked (Actor, Protocol —
// "cli" when empty — and Source); the creation is audited with it.
func CreateEABKey(ctx context.Context, st EABStore, sealer *EABSealer, profile string, ev inventory.Event) (kid, hmacKey string, err error) {
	if sealer == nil {
		return "", "", errors.New("acme: no EAB sealer configured")
	}
	if !profileName(profile) {
		return "", "", fmt.Errorf("acme: %q is not a profile name", profile)
	}
	key, encoded, err := newEABKey()
	if err != nil {
		return "", "", err
	}
	kid = "eab-" + randomID()
	sealed, err := sealer.seal(kid, key)
	if err != nil {
		return "", "", err
	}
	if ev.Protocol == "" {
		ev.Protocol = "cli"
	}
	ev.Outcome, ev.Object = "ok", "acme-eab:"+kid
	ev.Details = json.RawMessage(fmt.Sprintf(`{"profile":%q}`, profile))
	if err := st.CreateACMEEABKey(ctx, &inventory.ACMEEABKey{KeyID: kid, Profile: profile, Sealed: sealed, CreatedBy: ev.Actor}, ev); err != nil {
		return "", "", err
	}
	return kid, encoded, nil
}

// newEABKey draws a 256-bit HMAC key and its base64url form. Keys whose
// form starts with '-' are drawn again: operators paste the key after
// `--eab-hmac-key` and certbot's argument parser takes a leading '-' for
// an option (seen with certbot 2.1: "expected one argument").
func newEABKey() ([]byte, string, error) {
	for {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, "", err
		}
		if enc := base64.RawURLEncoding.EncodeToString(key); enc[0] != '-' {
			return key, enc, nil
		}
	}
}

// verifyEAB checks an externalAccountBinding JWS: HS256 (or HS384/512)
// over the account's JWK, with the newAccount URL, by a known, unused key
// of this profile. It returns the key ID; binding happens in the store
// transaction that creates the account.
func (s *Server) verifyEAB(req *request, raw json.RawMessage) (string, *Problem) {
	var hdr struct {
		Alg   string `json:"alg"`
		Kid   string `json:"kid"`
		URL   string `json:"url"`
		Nonce string `json:"nonce"`
	}
	var f flatJWS
	if err := json.Unmarshal(raw, &f); err != nil || f.Payload == nil {
		return "", malformed("externalAccountBinding is not a flattened JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(f.Protected)
	if err != nil || json.Unmarshal(b, &hdr) != nil {
		return "", malformed("externalAccountBinding has a bad protected header")
	}
	if hdr.URL != req.url || hdr.Nonce != "" || hdr.Kid == "" {
		return "", malformed("externalAccountBinding needs the newAccount url, a kid and no nonce")
	}
	eabAlgs := []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512}
	if !contains([]string{"HS256", "HS384", "HS512"}, hdr.Alg) {
		p := problem(probBadSignatureAlg, http.StatusBadRequest, "externalAccountBinding must use HS256, HS384 or HS512")
		p.Algorithms = []string{"HS256", "HS384", "HS512"}
		return "", p
	}
	k, err := s.store.ACMEEABKey(req.Context(), hdr.Kid)
	if errors.Is(err, inventory.ErrNotFound) || (err == nil && (k.Profile != chiProfile(req.Request) || k.AccountID != "")) {
		return "", unauthorized("the external account key is unknown, for another directory, or already used")
	}
	if err != nil {
		return "", internal(err)
	}
	if s.opts.EABSealer == nil {
		return "", internal(errors.New("acme: no EAB sealer configured"))
	}
	key, _, err := s.opts.EABSealer.open(k.KeyID, k.Sealed)
	if err != nil {
		return "", internal(err)
	}
	jws, err := jose.ParseSignedJSON(string(raw), eabAlgs)
	if err != nil {
		return "", malformed("externalAccountBinding cannot be parsed")
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return "", unauthorized("externalAccountBinding signature does not verify")
	}
	var inner jose.JSONWebKey
	if err := inner.UnmarshalJSON(payload); err != nil {
		return "", malformed("externalAccountBinding payload is not a JWK")
	}
	a, _ := thumbprint(&inner)
	b2, _ := thumbprint(req.jwk)
	if !hmac.Equal([]byte(a), []byte(b2)) {
		return "", unauthorized("externalAccountBinding binds another key")
	}
	return k.KeyID, nil
}
