package acme

import "crypto/rand"

// SealEABKeyV1 seals the way MICA did before HSM-derived sealing: under
// a key derived from the backend secret. Tests build old stores with it.
func SealEABKeyV1(secret []byte, kid string, key []byte) ([]byte, error) {
	aead, err := gcmFrom(secret, "mica acme eab v1")
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, key, []byte(kid)), nil
}

// OpenEABKeyV1 opens with the old, secret-derived key only.
func OpenEABKeyV1(secret []byte, kid string, sealed []byte) ([]byte, error) {
	aead, err := gcmFrom(secret, "mica acme eab v1")
	if err != nil {
		return nil, err
	}
	return openWith(aead, kid, sealed)
}
