package enroll

import (
	"context"
	"crypto/x509"
	"net/http"

	"github.com/mica-pki/mica/inventory"
)

// cacerts answers GET /cacerts (RFC 7030 section 4.1) without
// authentication: a certs-only PKCS#7 holding the issuing chain and the
// root, which is what a device installs as its explicit trust anchor
// database.
//
// During a rotation's overlap the CA reports more than one serving
// issuer (*ca.CA, ServingIssuers): the current issuing CA comes first,
// then every other issuer still serving, so a device trusts both the
// certificates it will get and those its peers still hold. RFC 7030
// section 4.1.3 allows certificates beyond the chain in the response.
func (s *Server) cacerts(w http.ResponseWriter, r *http.Request, _ *label) {
	certs, err := s.caCerts(r.Context())
	if err != nil {
		s.fail(w, r, "cacerts", "", err)
		return
	}
	der, err := certsOnly(certs)
	if err != nil {
		s.fail(w, r, "cacerts", "", err)
		return
	}
	writeBase64(w, http.StatusOK, mediaPKCS7, der)
}

// servingIssuers is a CA that knows which issuing CAs serve now.
type servingIssuers interface {
	ServingIssuers(ctx context.Context) ([]inventory.Issuer, error)
}

// caCerts is the current chain, the other serving issuers, then the root.
func (s *Server) caCerts(ctx context.Context) ([]*x509.Certificate, error) {
	certs := s.ca.Chain()
	if sv, ok := s.ca.(servingIssuers); ok {
		serving, err := sv.ServingIssuers(ctx)
		if err != nil {
			return nil, err
		}
		for _, is := range serving {
			c, err := x509.ParseCertificate(is.DER)
			if err != nil || containsCert(certs, c) {
				continue
			}
			certs = append(certs, c)
		}
	}
	return append(certs, s.ca.Root()), nil
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}
