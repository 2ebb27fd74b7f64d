package revocation

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
)

// sigAlg is one signature algorithm: its DER AlgorithmIdentifier and the
// digest the signer is handed. hash == 0 means the signer takes the whole
// message (pure Ed25519, RFC 8410).
type sigAlg struct {
	name  string
	algID []byte
	hash  crypto.Hash
}

// AlgorithmIdentifiers as RFC 5758 (ECDSA: parameters absent), RFC 4055
// (RSA: parameters NULL) and RFC 8410 (Ed25519: absent) spell them. They are
// constants so every CRL and OCSP response carries byte-identical IDs.
var (
	algECDSAWithSHA256 = sigAlg{"ecdsa-with-SHA256", []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}, crypto.SHA256}
	algECDSAWithSHA384 = sigAlg{"ecdsa-with-SHA384", []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}, crypto.SHA384}
	algECDSAWithSHA512 = sigAlg{"ecdsa-with-SHA512", []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04}, crypto.SHA512}
	algSHA256WithRSA   = sigAlg{"sha256WithRSAEncryption", []byte{0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00}, crypto.SHA256}
	algEd25519         = sigAlg{"Ed25519", []byte{0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70}, 0}
)

// sigAlgFor picks the algorithm from the signing key alone, matching the
// hash strength to the curve (P-256→SHA-256, P-384→SHA-384, P-521→SHA-512)
// the way CA/B Forum and RFC 5480 §4 recommend; RSA always uses SHA-256
// PKCS#1 v1.5, which every relying party verifies.
func sigAlgFor(pub crypto.PublicKey) (sigAlg, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return algECDSAWithSHA256, nil
		case elliptic.P384():
			return algECDSAWithSHA384, nil
		case elliptic.P521():
			return algECDSAWithSHA512, nil
		}
		return sigAlg{}, fmt.Errorf("revocation: unsupported ECDSA curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return algSHA256WithRSA, nil
	case ed25519.PublicKey:
		return algEd25519, nil
	}
	return sigAlg{}, fmt.Errorf("revocation: unsupported public key type %T", pub)
}

// sign hands the signer a digest (or, for Ed25519, the message itself).
func (a sigAlg) sign(s crypto.Signer, digestOrMsg []byte) ([]byte, error) {
	sig, err := s.Sign(rand.Reader, digestOrMsg, a.hash)
	if err != nil {
		return nil, fmt.Errorf("revocation: signing with %s: %w", a.name, err)
	}
	return sig, nil
}

// verify checks a fresh signature before it is published. A wrong or faulty
// signer (an HSM slot holding another key, an RSA-CRT fault) would otherwise
// ship an artefact every relying party rejects — or, for RSA-CRT, one that
// leaks the private key. Go's x509.CreateCertificate checks for the same
// reason.
func (a sigAlg) verify(pub crypto.PublicKey, digestOrMsg, sig []byte) error {
	ok := false
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, digestOrMsg, sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(k, a.hash, digestOrMsg, sig) == nil
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, digestOrMsg, sig)
	}
	if !ok {
		return errors.New("revocation: signature produced by the signer does not verify under the expected public key")
	}
	return nil
}

// samePublicKey compares keys via the Equal method every standard key type
// has; anything else is treated as different.
func samePublicKey(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}
