package acme

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// EAB HMAC keys are stored sealed: AES-256-GCM, the key ID as associated
// data, under a key derived (HKDF-SHA256) from a deterministic RSA
// PKCS#1 v1.5 signature, by a key held in the HSM, over a fixed message
// (the EST key pool's seal works the same way, enroll/pool.go). Every
// replica that can use the HSM derives the same key; a database dump
// together with the PIN or passphrase (from a config file, a backup or an
// environment) does not open them, which the first scheme allowed: it
// derived the key from the backend secret itself (v1, still read for the
// migration). The HSM key is ca.EABSealKeyLabel; ca.SealingKey derives.

var eabSealMessage = sha256.Sum256([]byte("MICA ACME EAB HMAC key sealing key, version 2"))

// eabV2 starts every v2 sealed key; v1 keys start with their random
// nonce. The prefix only picks which key to try first: GCM decides.
var eabV2 = []byte("MEK2")

// EABSealer seals and opens EAB HMAC keys. It is safe for concurrent use.
type EABSealer struct {
	aead   cipher.AEAD
	legacy cipher.AEAD // v1, from the backend secret; nil when none
}

// NewEABSealer derives the sealing key from keys, creating the HSM key on
// first use (another replica creating it at the same time is fine).
// legacySecret is the backend PIN or passphrase v1 keys were sealed
// under: it is only used to open them (Open, MigrateEABKeys); nil means
// no v1 key can be opened.
func NewEABSealer(ctx context.Context, keys hsm.Backend, legacySecret []byte) (*EABSealer, error) {
	if keys == nil {
		return nil, errors.New("acme: EAB sealing needs the key backend")
	}
	s := &EABSealer{}
	var err error
	if s.aead, err = ca.SealingKey(ctx, keys, ca.EABSealKeyLabel, eabSealMessage[:], "mica acme eab v2"); err != nil {
		return nil, err
	}
	if len(legacySecret) > 0 {
		if s.legacy, err = gcmFrom(legacySecret, "mica acme eab v1"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func gcmFrom(secret []byte, info string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, secret, nil, info, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts an HMAC key for storage (v2).
func (s *EABSealer) seal(kid string, hmacKey []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(append([]byte{}, eabV2...), nonce...)
	return s.aead.Seal(out, nonce, hmacKey, []byte(kid)), nil
}

func openWith(aead cipher.AEAD, kid string, sealed []byte) ([]byte, error) {
	if aead == nil || len(sealed) < aead.NonceSize() {
		return nil, errors.New("acme: sealed EAB key cannot be opened")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(kid))
}

// open returns the HMAC key and whether it was sealed the old way (v1).
func (s *EABSealer) open(kid string, sealed []byte) ([]byte, bool, error) {
	if rest, ok := bytes.CutPrefix(sealed, eabV2); ok {
		if key, err := openWith(s.aead, kid, rest); err == nil {
			return key, false, nil
		}
	}
	key, err := openWith(s.legacy, kid, sealed)
	if err != nil {
		return nil, false, errors.New("acme: sealed EAB key cannot be opened")
	}
	return key, true, nil
}

// EABRewrapStore is what MigrateEABKeys needs; *inventory.Store
// satisfies it. RewrapACMEEABKey must be a compare-and-swap on the sealed
// key that appends its event in the same transaction.
type EABRewrapStore interface {
	SealedACMEEABKeys(ctx context.Context) ([]inventory.SealedACMEEABKey, error)
	RewrapACMEEABKey(ctx context.Context, kid string, old, sealed []byte, ev inventory.Event) (bool, error)
}

var _ EABRewrapStore = (*inventory.Store)(nil)

// MigrateEABKeys re-wraps every v1 (secret-sealed) EAB key under the HSM
// key, each with an "acme.eab.rewrap" audit event naming ev's actor. It
// is idempotent (v2 keys are skipped) and safe to run on every replica at
// once (the store swaps only a key still sealed as read, so each key is
// re-wrapped and audited once). It returns how many keys this call
// re-wrapped. A key neither scheme opens is logged by the caller through
// the returned error after the others have been migrated.
func (s *EABSealer) MigrateEABKeys(ctx context.Context, st EABRewrapStore, ev inventory.Event) (int, error) {
	keys, err := st.SealedACMEEABKeys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var bad []string
	for _, k := range keys {
		plain, legacy, err := s.open(k.KeyID, k.Sealed)
		if err != nil {
			bad = append(bad, k.KeyID)
			continue
		}
		if !legacy {
			continue
		}
		sealed, err := s.seal(k.KeyID, plain)
		clear(plain)
		if err != nil {
			return n, err
		}
		e := ev
		e.Outcome, e.Details = "ok", json.RawMessage(`{"from":"v1 (backend secret)","to":"v2 (HSM-derived)"}`)
		if e.Protocol == "" {
			e.Protocol = "system"
		}
		done, err := st.RewrapACMEEABKey(ctx, k.KeyID, k.Sealed, sealed, e)
		if err != nil {
			return n, err
		}
		if done {
			n++
		}
	}
	if len(bad) > 0 {
		return n, fmt.Errorf("acme: %d EAB keys open under neither sealing key (first: %s)", len(bad), bad[0])
	}
	return n, nil
}
