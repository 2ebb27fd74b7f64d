package ca

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"

	"github.com/mica-pki/mica/hsm"
)

// SealingKey returns the AES-256-GCM key that seals a front end's stored
// secrets (the EST key pool's private keys, the ACME EAB HMAC keys). The
// key is derived (HKDF-SHA256 with info) from an RSA PKCS#1 v1.5 signature
// over digest (a SHA-256 digest) by the backend key labelled label, which
// is created on first use as RSA-2048 and never leaves the backend.
// PKCS#1 v1.5 signatures are deterministic, so every replica with the
// backend derives the same key, and nobody without it — a stolen database
// dump, even with the PIN or passphrase of another installation — can.
// The derived key lives only in memory. The key appears in the key
// inventory under its label (keyinv.go).
//
// Safe for concurrent use, also across replicas: two processes creating
// the key at once end up with one (the loser lists again). Errors wrap
// ErrUnavailable when the backend cannot list, create or sign.
func SealingKey(ctx context.Context, keys hsm.Backend, label string, digest []byte, info string) (cipher.AEAD, error) {
	uri, err := findOrCreateSealKey(ctx, keys, label)
	if err != nil {
		return nil, err
	}
	signer, err := keys.Signer(ctx, uri)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "sealing key "+label+" unavailable")
	}
	sig, err := signer.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "sealing key "+label+" cannot sign")
	}
	key, err := hkdf.Key(sha256.New, sig, nil, info, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func findOrCreateSealKey(ctx context.Context, keys hsm.Backend, label string) (string, error) {
	for range 2 {
		infos, err := keys.Keys(ctx)
		if err != nil {
			return "", Wrap(ErrUnavailable, err, "listing backend keys")
		}
		for _, k := range infos {
			if k.Label == label {
				return k.URI, nil
			}
		}
		uri, err := keys.CreateKey(ctx, label, hsm.RSA2048)
		if err == nil {
			return uri, nil
		}
		if !errors.Is(err, hsm.ErrExists) {
			return "", Wrap(ErrUnavailable, err, "creating sealing key "+label)
		}
		// Another replica created it between our list and create: list again.
	}
	return "", Errorf(ErrUnavailable, "sealing key %s exists but cannot be found", label)
}
