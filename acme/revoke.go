package acme

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// revokeCert revokes a certificate (RFC 8555 section 7.6) when the
// request is signed by the account that ordered it, by an account holding
// valid authorizations for all its names, or by the certificate's own key.
func (s *Server) revokeCert(w http.ResponseWriter, req *request) error {
	var in struct {
		Certificate string `json:"certificate"`
		Reason      *int   `json:"reason"`
	}
	if p := decodePayload(req, &in); p != nil {
		return p
	}
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(in.Certificate, "="))
	if err != nil {
		return malformed("certificate is not base64url DER")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return malformed("certificate cannot be parsed")
	}
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	fp := sha256.Sum256(der)
	recs, err := s.store.FindCertificates(req.Context(), inventory.CertFilter{Serial: cert.SerialNumber.Text(16), PublicKeySHA256: hex.EncodeToString(spki[:]), Limit: 10})
	if err != nil {
		return internal(err)
	}
	var rec *inventory.Certificate
	for i := range recs {
		if recs[i].FingerprintSHA256 == hex.EncodeToString(fp[:]) {
			rec = &recs[i]
		}
	}
	if rec == nil {
		return notFound("certificate") // not one of ours
	}
	if p := s.mayRevoke(req, rec, cert); p != nil {
		return p
	}
	reason := ""
	if in.Reason != nil {
		if *in.Reason == 8 || *in.Reason == 6 || *in.Reason < 0 {
			return problem(probBadRevocationReason, http.StatusBadRequest, "reason %d is not allowed", *in.Reason)
		}
		reason = strconv.Itoa(*in.Reason)
	}
	actor := "acme:certificate-key"
	if req.account != nil {
		actor = s.accountURL(req.Request, req.account.ID)
	}
	_, err = s.ca.Revoke(req.Context(), ca.RevokeRequest{IssuerID: rec.IssuerID, Serial: rec.Serial, Reason: reason,
		Actor: actor, Protocol: "acme", Source: remoteIP(req.Request)})
	if err != nil {
		if errors.Is(err, ca.ErrBadRevocation) {
			return problem(probBadRevocationReason, http.StatusBadRequest, "%s", ca.UserMessage(err))
		}
		return caProblem(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// mayRevoke is RFC 8555 section 7.6's authority check. A JWK-signed
// request must be signed by the certificate's own key. A kid-signed one
// must come from the account that ordered the certificate or from one
// holding current authorizations for every identifier the certificate
// carries. A certificate naming anything ACME cannot validate (no SANs,
// a common name that is not one of its SANs, URIs, e-mail addresses,
// other name forms) can therefore never be revoked by an unrelated
// account, whatever authorizations it holds.
func (s *Server) mayRevoke(req *request, rec *inventory.Certificate, cert *x509.Certificate) *Problem {
	if req.jwk != nil {
		// Signed with a key: it must be the certificate's.
		want, err := thumbprintOfPublic(cert.PublicKey)
		got, _ := thumbprint(req.jwk)
		if err != nil || got != want {
			return unauthorized("the JWS key is neither an account key nor the certificate's key")
		}
		return nil
	}
	if rec.Requester == s.accountURL(req.Request, req.account.ID) {
		return nil
	}
	const refused = "this account did not order the certificate and holds no current authorization for %s"
	ids, why := revocationIdentifiers(cert)
	if why != "" {
		return unauthorized("this account did not order the certificate, and the certificate %s, which no ACME authorization covers", why)
	}
	now := s.now()
	for _, id := range ids {
		value, wildcard := strings.CutPrefix(id.Value, "*.")
		zs, err := s.store.ACMEAuthzs(req.Context(), inventory.ACMEAuthzFilter{AccountID: req.account.ID, Status: statusValid, Value: value})
		if err != nil {
			return internal(err)
		}
		// A wildcard name needs the wildcard's own authorization, and a
		// plain name a plain one: the two are validated differently.
		if !slices.ContainsFunc(zs, func(z inventory.ACMEAuthz) bool {
			return z.Identifier.Type == id.Type && z.Wildcard == wildcard && now.Before(z.Expires)
		}) {
			return unauthorized(refused, id.Value)
		}
	}
	return nil
}

// revocationIdentifiers lists the ACME identifiers a certificate names,
// read from the certificate itself, or says why it names something else
// too. Go's parser keeps only some SAN forms, so the SAN extension is
// walked here: every GeneralName must be a dNSName or an iPAddress.
func revocationIdentifiers(cert *x509.Certificate) ([]Identifier, string) {
	var ids []Identifier
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		in := cryptobyte.String(ext.Value)
		var seq cryptobyte.String
		if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
			return nil, "has a subject alternative name extension that cannot be read"
		}
		for !seq.Empty() {
			var tag cbasn1.Tag
			var v cryptobyte.String
			if !seq.ReadAnyASN1(&v, &tag) {
				return nil, "has a subject alternative name extension that cannot be read"
			}
			switch tag {
			case cbasn1.Tag(2).ContextSpecific(): // dNSName
				ids = append(ids, Identifier{Type: "dns", Value: strings.ToLower(string(v))})
			case cbasn1.Tag(7).ContextSpecific(): // iPAddress
				ip, ok := netip.AddrFromSlice(v)
				if !ok {
					return nil, "has an IP address SAN that cannot be read"
				}
				ids = append(ids, Identifier{Type: "ip", Value: ip.Unmap().String()})
			default:
				return nil, "names URIs, e-mail addresses or other names"
			}
		}
	}
	if len(ids) == 0 {
		return nil, "has no DNS or IP subject alternative names"
	}
	if cn := strings.ToLower(cert.Subject.CommonName); cn != "" && !slices.ContainsFunc(ids, func(id Identifier) bool { return id.Value == cn }) {
		return nil, "has a common name that is not one of its subject alternative names"
	}
	return ids, ""
}

// oidSAN is id-ce-subjectAltName (RFC 5280 section 4.2.1.6).
var oidSAN = asn1.ObjectIdentifier{2, 5, 29, 17}
