package acme

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

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
	// RFC 8555 section 7.6: an account holding authorizations for every
	// name may revoke too.
	for _, san := range rec.SANs {
		typ, value, _ := strings.Cut(san, ":")
		zs, err := s.store.ACMEAuthzs(req.Context(), inventory.ACMEAuthzFilter{AccountID: req.account.ID, Status: statusValid, Value: strings.TrimPrefix(value, "*.")})
		if err != nil {
			return internal(err)
		}
		if !slices.ContainsFunc(zs, func(z inventory.ACMEAuthz) bool { return z.Identifier.Type == typ && s.now().Before(z.Expires) }) {
			return unauthorized("this account did not order the certificate and holds no valid authorization for %s", value)
		}
	}
	return nil
}
