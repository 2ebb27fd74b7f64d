package revocation

// The non-streaming parts of a CRL: validation up front, the CRL
// extensions, one entry's DER, and the shard function.

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net/url"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// prepareCRL validates everything that does not depend on the entries, so
// a misconfiguration fails before a million rows are read.
func prepareCRL(t *CRLTemplate, issuer *x509.Certificate, signer crypto.Signer) (sigAlg, []byte, error) {
	switch {
	case issuer == nil || signer == nil:
		return sigAlg{}, nil, errors.New("revocation: CRL needs an issuer certificate and a signer")
	case len(issuer.SubjectKeyId) == 0:
		return sigAlg{}, nil, errors.New("revocation: issuer certificate has no subject key identifier for the CRL's authority key identifier")
	case issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageCRLSign == 0:
		return sigAlg{}, nil, errors.New("revocation: issuer certificate lacks the cRLSign key usage")
	case !samePublicKey(signer.Public(), issuer.PublicKey):
		return sigAlg{}, nil, errors.New("revocation: signer's public key does not match the issuer certificate")
	}
	if err := checkCRLNumber("CRL number", t.Number); err != nil {
		return sigAlg{}, nil, err
	}
	if t.DeltaOf != nil {
		if err := checkCRLNumber("base CRL number", t.DeltaOf); err != nil {
			return sigAlg{}, nil, err
		}
		if t.DeltaOf.Cmp(t.Number) >= 0 {
			return sigAlg{}, nil, errors.New("revocation: a delta CRL's number must be above its base CRL's number")
		}
	}
	if t.ThisUpdate.IsZero() || t.NextUpdate.IsZero() || !t.NextUpdate.After(t.ThisUpdate) {
		return sigAlg{}, nil, errors.New("revocation: CRL needs thisUpdate and a later nextUpdate")
	}
	if validTime(t.ThisUpdate) != nil || validTime(t.NextUpdate) != nil {
		return sigAlg{}, nil, fmt.Errorf("revocation: CRL update times: %w", errTimeRange)
	}
	for _, u := range []string{t.IssuingDistributionPoint, t.FreshestCRL} {
		if err := checkURI(u); u != "" && err != nil {
			return sigAlg{}, nil, err
		}
	}
	alg, err := sigAlgFor(signer.Public())
	if err != nil {
		return sigAlg{}, nil, err
	}
	exts, err := crlExtensions(t, issuer.SubjectKeyId)
	return alg, exts, err
}

func checkCRLNumber(what string, n *big.Int) error {
	// 20 octets of two's complement hold 159 magnitude bits.
	if n == nil || n.Sign() < 0 || n.BitLen() > 159 {
		return fmt.Errorf("revocation: %s must be a non-negative integer of at most 20 octets", what)
	}
	return nil
}

// checkURI accepts what fits an IA5String GeneralName: an absolute URI of
// printable ASCII without spaces.
func checkURI(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return fmt.Errorf("revocation: distribution point %q is not printable ASCII", s)
		}
	}
	if u, err := url.Parse(s); err != nil || u.Scheme == "" {
		return fmt.Errorf("revocation: distribution point %q is not an absolute URI", s)
	}
	return nil
}

var (
	oidAuthorityKeyID    = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber         = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidIssuingDistPoint  = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidFreshestCRL       = asn1.ObjectIdentifier{2, 5, 29, 46}
)

// crlExtensions encodes [0] EXPLICIT Extensions. AKI and CRL Number come
// first, in x509.CreateRevocationList's order, so our TBS is byte-identical
// to the standard library's for the same input (the differential test
// relies on it).
func crlExtensions(t *CRLTemplate, ski []byte) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addExtension(b, oidAuthorityKeyID, false, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ski) })
				})
			})
			addExtension(b, oidCRLNumber, false, func(b *cryptobyte.Builder) { b.AddASN1BigInt(t.Number) })
			if t.IssuingDistributionPoint != "" {
				addExtension(b, oidIssuingDistPoint, true, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						addDistributionPointName(b, t.IssuingDistributionPoint)
						// onlyContainsUserCerts [1] IMPLICIT BOOLEAN TRUE
						b.AddASN1(cbasn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddUint8(0xff) })
					})
				})
			}
			if t.DeltaOf != nil {
				addExtension(b, oidDeltaCRLIndicator, true, func(b *cryptobyte.Builder) { b.AddASN1BigInt(t.DeltaOf) })
			}
			if t.FreshestCRL != "" {
				addExtension(b, oidFreshestCRL, false, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // CRLDistributionPoints
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // DistributionPoint
							addDistributionPointName(b, t.FreshestCRL)
						})
					})
				})
			}
		})
	})
	return b.Bytes()
}

// addDistributionPointName writes distributionPoint [0] (explicit, since it
// is a CHOICE) holding fullName [0] GeneralNames with one
// uniformResourceIdentifier [6] IA5String.
func addDistributionPointName(b *cryptobyte.Builder, uri string) {
	b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(uri)) })
		})
	})
}

// addExtension writes Extension ::= SEQUENCE { extnID, critical DEFAULT
// FALSE (so only written when true, as DER requires), extnValue }.
func addExtension(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, critical bool, value cryptobyte.BuilderContinuation) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

// entryEncoder turns entries into DER with two reused buffers: no
// allocation per entry.
type entryEncoder struct {
	delta     bool
	body, out []byte
}

// Fixed-size entry extensions: reasonCode (2.5.29.21) wraps a one-byte
// ENUMERATED; invalidityDate (2.5.29.24) wraps a 15-character
// GeneralizedTime.
var (
	reasonExtPrefix   = []byte{tagSequence, 0x0a, tagOID, 0x03, 0x55, 0x1d, 0x15, tagOctetString, 0x03, tagEnumerated, 0x01}
	invalidityPrefix  = []byte{tagSequence, 0x18, tagOID, 0x03, 0x55, 0x1d, 0x18, tagOctetString, 0x11}
	reasonExtLen      = len(reasonExtPrefix) + 1
	invalidityExtLen  = len(invalidityPrefix) + 17
	errSerialRequired = errors.New("serial number missing or negative")
)

func (e *entryEncoder) encode(en *Entry) ([]byte, error) {
	switch {
	case en.Serial == nil || en.Serial.Sign() < 0:
		return nil, errSerialRequired
	case en.RevokedAt.IsZero():
		return nil, fmt.Errorf("serial %x: revocation time missing", en.Serial)
	case validTime(en.RevokedAt) != nil || validTime(en.InvalidityDate) != nil:
		return nil, fmt.Errorf("serial %x: %w", en.Serial, errTimeRange)
	}
	if err := checkReason(en.Reason, e.delta); err != nil {
		return nil, fmt.Errorf("serial %x: %w", en.Serial, err)
	}
	body := appendUint(e.body[:0], en.Serial)
	body = appendTime(body, en.RevokedAt)
	extLen := 0
	if en.Reason != ReasonUnspecified {
		extLen += reasonExtLen
	}
	if !en.InvalidityDate.IsZero() {
		extLen += invalidityExtLen
	}
	if extLen > 0 {
		// invalidityDate before reasonCode: the order x509.CreateRevocationList
		// uses (ExtraExtensions, then reason), kept for byte-identical output.
		body = appendHeader(body, tagSequence, extLen)
		if !en.InvalidityDate.IsZero() {
			body = appendGeneralizedTime(append(body, invalidityPrefix...), en.InvalidityDate)
		}
		if en.Reason != ReasonUnspecified {
			body = append(append(body, reasonExtPrefix...), byte(en.Reason))
		}
	}
	out := appendHeader(e.out[:0], tagSequence, len(body))
	out = append(out, body...)
	e.body, e.out = body, out
	return out, nil
}

// CRLShard maps a serial number to one of shards partitioned CRLs: serial
// mod shards. MICA's serials are CSPRNG output, so the shards come out
// even. The mapping must be the same at issuance (when the shard's URL is
// written into the certificate's CRL Distribution Points) and at CRL
// generation, for the certificate's whole life — so the shard count of an
// issuer must never change; store the shard with the certificate anyway.
// shards <= 1 means no sharding and always returns 0.
func CRLShard(serial *big.Int, shards int) int {
	if shards <= 1 || serial == nil {
		return 0
	}
	var m big.Int
	m.Mod(serial, big.NewInt(int64(shards))) // Euclidean: never negative
	return int(m.Int64())
}
