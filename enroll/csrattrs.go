package enroll

import (
	"encoding/asn1"
	"net/http"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/mica-pki/mica/ca"
)

// Object identifiers used in CSR attributes (RFC 7030 section 4.5.2,
// RFC 9908 section 3 for key types: the key algorithm as an attribute
// whose value names the curve or the RSA modulus size).
var (
	oidECPublicKey      = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidRSAEncryption    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidEd25519          = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidP256             = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384             = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521             = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
	oidECDSAWithSHA256  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidSHA256WithRSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidExtensionRequest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}
	oidSubjectAltName   = asn1.ObjectIdentifier{2, 5, 29, 17}
)

type csrAttribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

// csrattrs answers GET /csrattrs (RFC 7030 section 4.5, RFC 9908) without
// authentication: the key algorithm and signature algorithm the label's
// profile wants first, challengePassword when the label binds requests to
// tls-unique, subjectAltName when the profile issues names, and last the
// RFC 9908 CertificationRequestInfoTemplate saying the same as a CSR
// skeleton. Clients that predate RFC 9908 skip the attribute they do not
// know (RFC 7030 section 4.5.2).
func (s *Server) csrattrs(w http.ResponseWriter, r *http.Request, l *label) {
	prof, ok := s.ca.Profile(l.Profile)
	if !ok {
		s.fail(w, r, "csrattrs", "", ca.Errorf(ca.ErrUnknownProfile, "label %s has no profile", l.name))
		return
	}
	der, err := csrAttrsFor(prof, l.TLSUnique)
	if err != nil {
		s.fail(w, r, "csrattrs", "", err)
		return
	}
	writeBase64(w, http.StatusOK, mediaCSRAttrs, der)
}

func csrAttrsFor(p ca.Profile, tlsUnique bool) ([]byte, error) {
	kt := "EC-P256"
	if len(p.KeyTypes) > 0 {
		kt = p.KeyTypes[0]
	}
	var items []asn1.RawValue
	add := func(v any) error {
		b, err := asn1.Marshal(v)
		if err == nil {
			items = append(items, asn1.RawValue{FullBytes: b})
		}
		return err
	}
	attr := func(oid asn1.ObjectIdentifier, vals ...any) error {
		a := csrAttribute{Type: oid}
		for _, v := range vals {
			b, err := asn1.Marshal(v)
			if err != nil {
				return err
			}
			a.Values = append(a.Values, asn1.RawValue{FullBytes: b})
		}
		return add(a)
	}
	var err error
	switch {
	case strings.HasPrefix(kt, "EC-"):
		curve, sig := oidP256, oidECDSAWithSHA256
		switch kt {
		case "EC-P384":
			curve, sig = oidP384, oidECDSAWithSHA384
		case "EC-P521":
			curve, sig = oidP521, oidECDSAWithSHA384
		}
		if err = attr(oidECPublicKey, curve); err == nil {
			err = add(sig)
		}
	case strings.HasPrefix(kt, "RSA-"):
		bits := 2048
		switch kt {
		case "RSA-3072":
			bits = 3072
		case "RSA-4096":
			bits = 4096
		}
		if err = attr(oidRSAEncryption, bits); err == nil {
			err = add(oidSHA256WithRSA)
		}
	case kt == "Ed25519":
		err = add(oidEd25519)
	}
	if err != nil {
		return nil, err
	}
	if tlsUnique {
		if err := add(oidChallengePassword); err != nil {
			return nil, err
		}
	}
	if len(p.DNS)+len(p.IPRanges)+len(p.URIs)+len(p.Emails) > 0 {
		if err := attr(oidExtensionRequest, oidSubjectAltName); err != nil {
			return nil, err
		}
	}
	tmpl, err := criTemplateAttr(p, kt)
	if err != nil {
		return nil, err
	}
	items = append(items, asn1.RawValue{FullBytes: tmpl})
	return asn1.Marshal(items)
}

// RFC 9908 section 3.4 object identifiers.
var (
	oidCRITemplate          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 61}
	oidExtensionReqTemplate = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 62}
	oidCommonName           = asn1.ObjectIdentifier{2, 5, 4, 3}
)

// criTemplateAttr is the RFC 9908 id-aa-certificationRequestInfoTemplate
// attribute for a profile whose first key type is kt:
//
//	CertificationRequestInfoTemplate ::= SEQUENCE {
//	    version       INTEGER { v1(0) } (v1, ... ),
//	    subject       NameTemplate OPTIONAL,
//	    subjectPKInfo [0] SubjectPublicKeyInfoTemplate OPTIONAL,
//	    attributes    [1] Attributes{{ CRIAttributes }} }
//
// The subject is one commonName whose value the client fills in; the
// subjectPKInfo names the key algorithm (with the curve for EC keys) and
// leaves the key out; the attributes hold an id-aa-extensionReqTemplate
// with a subjectAltName whose GeneralNames has one empty placeholder per
// name type the profile issues (dNSName, iPAddress, uniformResourceIdentifier,
// rfc822Name): the client replaces each with its names of that type, or
// drops those it has none of. The RSA modulus size is not expressible in
// the template; the RFC 7030-style rsaEncryption attribute beside it says
// it.
func criTemplateAttr(p ca.Profile, kt string) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // Attribute
		b.AddASN1ObjectIdentifier(oidCRITemplate)
		b.AddASN1(casn1.SET, func(b *cryptobyte.Builder) {
			b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(0)
				b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // RDNSequenceTemplate
					b.AddASN1(casn1.SET, func(b *cryptobyte.Builder) {
						b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidCommonName) })
					})
				})
				b.AddASN1(casn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { // SubjectPublicKeyInfoTemplate
					b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
						switch {
						case strings.HasPrefix(kt, "EC-"):
							b.AddASN1ObjectIdentifier(oidECPublicKey)
							b.AddASN1ObjectIdentifier(curveOID(kt))
						case kt == "Ed25519":
							b.AddASN1ObjectIdentifier(oidEd25519)
						default:
							b.AddASN1ObjectIdentifier(oidRSAEncryption)
							b.AddASN1NULL()
						}
					})
				})
				b.AddASN1(casn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { // attributes
					names := []struct {
						tag   uint8
						wants bool
					}{{1, len(p.Emails) > 0}, {2, len(p.DNS) > 0}, {6, len(p.URIs) > 0}, {7, len(p.IPRanges) > 0}}
					var gn []byte
					for _, n := range names {
						if n.wants {
							gn = append(gn, 0x80|n.tag, 0)
						}
					}
					if gn == nil {
						return
					}
					b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidExtensionReqTemplate)
						b.AddASN1(casn1.SET, func(b *cryptobyte.Builder) {
							b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // ExtensionReqTemplate
								b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // ExtensionTemplate
									b.AddASN1ObjectIdentifier(oidSubjectAltName)
									b.AddASN1(casn1.OCTET_STRING, func(b *cryptobyte.Builder) {
										b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(gn) })
									})
								})
							})
						})
					})
				})
			})
		})
	})
	return b.Bytes()
}

// curveOID names the curve of an EC-* key type.
func curveOID(kt string) asn1.ObjectIdentifier {
	switch kt {
	case "EC-P384":
		return oidP384
	case "EC-P521":
		return oidP521
	}
	return oidP256
}
