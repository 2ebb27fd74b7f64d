package acme

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
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
// once and stored only sealed: AES-256-GCM under a key derived (HKDF-
// SHA256) from the CA's secret, with the key ID as associated data. A
// database dump alone therefore cannot bind accounts, and every replica
// holding the CA secret can open it. A key binds one account, once.

// EABStore is what CreateEABKey needs.
type EABStore interface {
	CreateACMEEABKey(ctx context.Context, k *inventory.ACMEEABKey, ev inventory.Event) error
}

func eabAEAD(secret []byte) (cipher.AEAD, error) {
	if len(secret) == 0 {
		return nil, errors.New("acme: no EAB secret configured")
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "mica acme eab v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealEABKey encrypts an HMAC key for storage.
func sealEABKey(secret []byte, kid string, hmacKey []byte) ([]byte, error) {
	aead, err := eabAEAD(secret)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, hmacKey, []byte(kid)), nil
}

func openEABKey(secret []byte, kid string, sealed []byte) ([]byte, error) {
	aead, err := eabAEAD(secret)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("acme: sealed EAB key too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(kid))
}

// CreateEABKey makes a new EAB key for an ACME profile, stores it sealed
// under secret and returns the key ID and the base64url HMAC key, which
// exists nowhere else afterwards. ev names who asked (Actor, Protocol —
// "cli" when empty — and Source); the creation is audited with it.
func CreateEABKey(ctx context.Context, st EABStore, secret []byte, profile string, ev inventory.Event) (kid, hmacKey string, err error) {
	if !profileName(profile) {
		return "", "", fmt.Errorf("acme: %q is not a profile name", profile)
	}
	key, encoded, err := newEABKey()
	if err != nil {
		return "", "", err
	}
	kid = "eab-" + randomID()
	sealed, err := sealEABKey(secret, kid, key)
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
	key, err := openEABKey(s.opts.EABSecret, k.KeyID, k.Sealed)
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
