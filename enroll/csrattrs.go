package enroll

import (
	"encoding/asn1"
	"net/http"
	"strings"

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

// csrattrs answers GET /csrattrs (RFC 7030 section 4.5) without
// authentication: the key algorithm and signature algorithm the label's
// profile wants first, challengePassword when the label binds requests to
// tls-unique, and subjectAltName when the profile issues names.
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
	return asn1.Marshal(items)
}
