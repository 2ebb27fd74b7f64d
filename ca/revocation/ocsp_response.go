package revocation

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	_ "crypto/sha512" // CertID hashes SHA-384/512 via crypto.Hash.New
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Status is a certificate's OCSP status. The values match
// golang.org/x/crypto/ocsp (Good, Revoked, Unknown).
type Status int

const (
	Good Status = iota
	Revoked
	Unknown
)

// Unsuccessful OCSPResponses (RFC 6960 §4.2.1): a bare
// SEQUENCE { ENUMERATED status }, unsigned and the same every time, so they
// are constants; write them with io.WriteString.
const (
	MalformedRequestResponse = "\x30\x03\x0a\x01\x01"
	InternalErrorResponse    = "\x30\x03\x0a\x01\x02"
	TryLaterResponse         = "\x30\x03\x0a\x01\x03"
	SigRequiredResponse      = "\x30\x03\x0a\x01\x05"
	UnauthorizedResponse     = "\x30\x03\x0a\x01\x06"
)

// HTTP media types (RFC 6960 Appendix A, RFC 5280 §4.2.1.13).
const (
	OCSPRequestContentType  = "application/ocsp-request"
	OCSPResponseContentType = "application/ocsp-response"
	CRLContentType          = "application/pkix-crl"
)

// Response is one signed answer about one certificate.
type Response struct {
	// CertID is echoed into the response; copy it from the Request so the
	// client finds its answer (clients match the hash algorithm too). For
	// pre-signing use NewCertID, or leave the hashes nil for SHA-1 ones
	// computed from the issuer.
	CertID
	Status Status
	// ThisUpdate and NextUpdate bound the response's validity; RFC 5019
	// §2.2.4 requires both, and caches key on nextUpdate.
	ThisUpdate, NextUpdate time.Time
	// ProducedAt is when it was signed; zero means now.
	ProducedAt time.Time
	// RevokedAt and Reason apply to Revoked. ReasonUnspecified omits the
	// revocationReason, as on CRLs.
	RevokedAt time.Time
	Reason    int
	// Nonce is Request.Nonce, echoed in responseExtensions (RFC 9654) —
	// the ResponseData level, where OpenSSL looks for it, not the
	// singleExtensions where golang.org/x/crypto/ocsp would put it. Nil
	// for no nonce. A response with a nonce is bound to one request and
	// must not be cached or reused.
	Nonce []byte
}

var (
	oidOCSPBasic   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}
)

// CreateResponse signs a successful OCSPResponse carrying one
// BasicOCSPResponse (RFC 6960 §4.2.1, RFC 5019 profile).
//
// responderCert nil means issuer's own key signs (signer must be issuer's
// key). Otherwise responderCert is a delegated responder issued by issuer
// with the OCSPSigning EKU (see DelegatedResponderTemplate), signer holds
// its key, and the certificate rides along in the response's certs so
// clients can verify the delegation. The ResponderID is byKey (SHA-1 of
// the signing key), the RFC 5019 §2.2.3 choice and the smaller one.
func CreateResponse(issuer, responderCert *x509.Certificate, signer crypto.Signer, r Response) ([]byte, error) {
	if issuer == nil || signer == nil {
		return nil, errors.New("revocation: OCSP response needs an issuer certificate and a signer")
	}
	signingCert := issuer
	if responderCert != nil {
		// Cheap stand-ins for CheckSignatureFrom, which would cost a
		// signature verification per live response: the issuer name and,
		// where both are present, the key identifiers must match.
		if !bytes.Equal(responderCert.RawIssuer, issuer.RawSubject) ||
			(len(responderCert.AuthorityKeyId) > 0 && len(issuer.SubjectKeyId) > 0 && !bytes.Equal(responderCert.AuthorityKeyId, issuer.SubjectKeyId)) ||
			!slices.Contains(responderCert.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return nil, errors.New("revocation: delegated responder certificate must be issued by the issuer and carry the OCSPSigning EKU")
		}
		signingCert = responderCert
	}
	if !samePublicKey(signer.Public(), signingCert.PublicKey) {
		return nil, errors.New("revocation: signer's public key does not match the responder certificate")
	}
	alg, err := sigAlgFor(signer.Public())
	if err != nil {
		return nil, err
	}
	if err := checkResponse(&r); err != nil {
		return nil, err
	}
	id := r.CertID
	if id.HashAlgorithm == 0 {
		id.HashAlgorithm = crypto.SHA1
	}
	hashOID := hashOIDFor(id.HashAlgorithm)
	if hashOID == nil {
		return nil, fmt.Errorf("revocation: unsupported CertID hash %v", id.HashAlgorithm)
	}
	if id.IssuerNameHash == nil || id.IssuerKeyHash == nil {
		if id, err = NewCertID(issuer, id.HashAlgorithm, id.Serial); err != nil {
			return nil, err
		}
	}
	bits, err := publicKeyBits(signingCert)
	if err != nil {
		return nil, err
	}
	keyID := sha1.Sum(bits) // ResponderID byKey is SHA-1 by definition (RFC 6960 §4.2.1)
	producedAt := r.ProducedAt
	if producedAt.IsZero() {
		producedAt = time.Now()
	}

	b := cryptobyte.NewBuilder(make([]byte, 0, 256))
	// ResponseData; version v1 is the DEFAULT and so omitted.
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(keyID[:])
		})
		b.AddASN1GeneralizedTime(producedAt.UTC())
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // responses
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SingleResponse
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertID
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(hashOID)
						b.AddASN1NULL() // as OpenSSL and x/crypto/ocsp write it
					})
					b.AddASN1OctetString(id.IssuerNameHash)
					b.AddASN1OctetString(id.IssuerKeyHash)
					b.AddASN1BigInt(id.Serial)
				})
				switch r.Status {
				case Good:
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(*cryptobyte.Builder) {}) // [0] IMPLICIT NULL
				case Revoked:
					b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1GeneralizedTime(r.RevokedAt.UTC())
						if r.Reason != ReasonUnspecified {
							b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
								b.AddASN1Enum(int64(r.Reason))
							})
						}
					})
				case Unknown:
					b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(*cryptobyte.Builder) {})
				}
				b.AddASN1GeneralizedTime(r.ThisUpdate.UTC())
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1GeneralizedTime(r.NextUpdate.UTC())
				})
			})
		})
		if r.Nonce != nil {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					addExtension(b, oidNonce, false, func(b *cryptobyte.Builder) { b.AddBytes(r.Nonce) })
				})
			})
		}
	})
	tbs, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("revocation: encoding OCSP ResponseData: %w", err)
	}

	signed := tbs
	if alg.hash != 0 {
		h := alg.hash.New()
		h.Write(tbs)
		signed = h.Sum(nil)
	}
	sig, err := alg.sign(signer, signed)
	if err != nil {
		return nil, err
	}
	// Only RSA is re-verified here: an RSA-CRT fault leaks the key, while
	// for ECDSA a verify would cost more than the signature itself on the
	// live nonce path. CRLs verify every algorithm (one signature per run).
	if _, isRSA := signer.Public().(*rsa.PublicKey); isRSA {
		if err := alg.verify(signer.Public(), signed, sig); err != nil {
			return nil, err
		}
	}

	out := cryptobyte.NewBuilder(make([]byte, 0, len(tbs)+len(sig)+64+len(signingCert.Raw)))
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // OCSPResponse
		b.AddASN1Enum(0) // successful
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ResponseBytes
				b.AddASN1ObjectIdentifier(oidOCSPBasic)
				b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // BasicOCSPResponse
						b.AddBytes(tbs)
						b.AddBytes(alg.algID)
						b.AddASN1BitString(sig)
						if responderCert != nil {
							b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
								b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(responderCert.Raw) })
							})
						}
					})
				})
			})
		})
	})
	return out.Bytes()
}

func checkResponse(r *Response) error {
	switch {
	case r.Serial == nil:
		return errors.New("revocation: OCSP response needs a serial number")
	case r.Status < Good || r.Status > Unknown:
		return fmt.Errorf("revocation: invalid OCSP status %d", r.Status)
	case r.ThisUpdate.IsZero() || r.NextUpdate.IsZero() || r.NextUpdate.Before(r.ThisUpdate):
		return errors.New("revocation: OCSP response needs thisUpdate and a nextUpdate not before it")
	case r.Status == Revoked && r.RevokedAt.IsZero():
		return errors.New("revocation: revoked OCSP response needs the revocation time")
	case validTime(r.ThisUpdate) != nil || validTime(r.NextUpdate) != nil || validTime(r.ProducedAt) != nil || validTime(r.RevokedAt) != nil:
		return fmt.Errorf("revocation: OCSP response times: %w", errTimeRange)
	case len(r.Nonce) > MaxNonceLength+3: // 04 81 80 + 128 octets
		return errors.New("revocation: OCSP nonce too long")
	}
	if r.Status == Revoked {
		// removeFromCRL has no meaning outside delta CRLs.
		return checkReason(r.Reason, false)
	}
	return nil
}

func hashOIDFor(h crypto.Hash) asn1.ObjectIdentifier {
	for _, c := range certIDHashes {
		if c.hash == h {
			return c.oid
		}
	}
	return nil
}

// DelegatedResponderTemplate returns a certificate template for a
// delegated OCSP responder (RFC 6960 §4.2.2.2), for the issuing CA to sign
// with x509.CreateCertificate: end entity, digitalSignature, the
// id-kp-OCSPSigning EKU (nothing else, so the key is good for nothing
// else), and id-pkix-ocsp-nocheck (§4.2.2.2.1) because clients would
// otherwise need to check the responder's own revocation status — through
// the responder. nocheck means the certificate cannot be revoked in any
// useful way, so keep it short-lived (days) and rotate it; that is also
// what lets its key live outside the HSM. The serial is 16 random bytes;
// the ca layer may replace it with one from its own serial policy.
func DelegatedResponderTemplate(subject pkix.Name, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	if !notAfter.After(notBefore) {
		return nil, errors.New("revocation: responder certificate notAfter must be after notBefore")
	}
	serial := make([]byte, 16)
	if _, err := rand.Read(serial); err != nil {
		return nil, err
	}
	serial[0] &= 0x7f // positive
	serial[0] |= 0x40 // and 16 octets long, never shorter
	return &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		BasicConstraintsValid: true,
		IsCA:                  false,
		ExtraExtensions: []pkix.Extension{
			{Id: oidOCSPNoCheck, Value: []byte{0x05, 0x00}}, // NULL
		},
	}, nil
}
