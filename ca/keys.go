package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"
)

// keyTypeOf names a public key the way profiles and the inventory do
// ("EC-P256", "RSA-3072", "Ed25519"). RSA keys of other sizes are named
// "RSA-<bits>" and are in no profile; keys outside MICA's vocabulary are
// refused with ErrWeakKey naming what they are.
func keyTypeOf(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen()), nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "EC-P256", nil
		case elliptic.P384():
			return "EC-P384", nil
		case elliptic.P521():
			return "EC-P521", nil
		case elliptic.P224():
			return "", Errorf(ErrWeakKey, "elliptic curve P-224 is too weak (use P-256 or P-384)")
		}
		return "", Errorf(ErrWeakKey, "elliptic curve %s is not supported", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return "Ed25519", nil
	case nil:
		return "", Errorf(ErrWeakKey, "the public key algorithm is not supported")
	}
	// DSA lands here too (recognised by name: importing crypto/dsa only to
	// refuse it would pull in a deprecated package).
	if strings.Contains(fmt.Sprintf("%T", pub), "dsa.PublicKey") {
		return "", Errorf(ErrWeakKey, "DSA keys are not allowed (use ECDSA P-256, P-384 or RSA of 2048 bits or more)")
	}
	return "", Errorf(ErrWeakKey, "public key type %T is not supported", pub)
}

// checkSubjectKey enforces the profile's key types on a subject key and
// returns the key's type name.
func (p *policy) checkSubjectKey(pub crypto.PublicKey) (string, error) {
	kt, err := keyTypeOf(pub)
	if err != nil {
		return "", err
	}
	if k, ok := pub.(*rsa.PublicKey); ok {
		// Exponent 65537 is what every toolkit produces; small or even
		// exponents are either attacks or broken generators.
		if k.E != 65537 {
			return "", Errorf(ErrWeakKey, "RSA public exponent %d is not allowed (want 65537)", k.E)
		}
		minBits := 0
		for _, t := range p.keyTypes {
			var bits int
			if _, err := fmt.Sscanf(t, "RSA-%d", &bits); err == nil && (minBits == 0 || bits < minBits) {
				minBits = bits
			}
		}
		switch {
		case minBits == 0:
			return "", Errorf(ErrWeakKey, "RSA keys are not allowed by profile %s (allowed: %s)", p.Name, strings.Join(p.keyTypes, ", "))
		case k.N.BitLen() < minBits:
			return "", Errorf(ErrWeakKey, "RSA key of %d bits is below the profile minimum of %d", k.N.BitLen(), minBits)
		}
	}
	if !slices.Contains(p.keyTypes, kt) {
		return "", Errorf(ErrWeakKey, "%s keys are not allowed by profile %s (allowed: %s)", kt, p.Name, strings.Join(p.keyTypes, ", "))
	}
	return kt, nil
}

// signatureAlgorithmFor picks the signature algorithm an issuer key signs
// with: the hash matches the curve's strength for ECDSA, SHA-256 for RSA
// (PKCS #1 v1.5, which every relying party accepts), pure Ed25519.
func signatureAlgorithmFor(pub crypto.PublicKey) (x509.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return x509.ECDSAWithSHA256, nil
		case elliptic.P384():
			return x509.ECDSAWithSHA384, nil
		case elliptic.P521():
			return x509.ECDSAWithSHA512, nil
		}
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return x509.SHA256WithRSA, nil
		}
	case ed25519.PublicKey:
		return x509.PureEd25519, nil
	}
	kt, _ := keyTypeOf(pub)
	return 0, Errorf(ErrConfig, "issuer key type %q cannot sign certificates (want EC-P256, EC-P384, RSA-2048 or larger, Ed25519)", kt)
}

// subjectKeyID computes a key identifier per RFC 7093 section 2 method 1:
// the leftmost 160 bits of the SHA-256 hash of the subjectPublicKey BIT
// STRING value. (RFC 5280's SHA-1 method gives the same length; SHA-256
// keeps SHA-1 out of the CA entirely.)
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

// spkiSHA256 is the hex SHA-256 of a DER SubjectPublicKeyInfo, the
// inventory's key fingerprint (the same value as RFC 7469 pins, in hex).
func spkiSHA256(spki []byte) string {
	sum := sha256.Sum256(spki)
	return fmt.Sprintf("%x", sum[:])
}

// samePublicKey reports whether two public keys are equal.
func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
