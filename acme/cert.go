package acme

import (
	"context"
	"encoding/pem"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
)

// certificate answers POST-as-GET on /cert/{order}: the leaf and its
// chain up to, not including, the root, PEM (RFC 8555 section 7.4.2).
func (s *Server) certificate(w http.ResponseWriter, req *request) error {
	if !req.postAsGet {
		return malformed("certificates are downloaded with POST-as-GET")
	}
	o, err := s.store.ACMEOrder(req.Context(), chi.URLParam(req.Request, "id"))
	if err != nil || o.AccountID != req.account.ID || o.Status != statusValid || o.CertSerial == "" {
		return notFound("certificate")
	}
	c, err := s.store.Certificate(req.Context(), o.CertIssuerID, o.CertSerial)
	if err != nil {
		return internal(err)
	}
	chain, err := s.chain(req.Context(), c.IssuerID)
	if err != nil {
		return internal(err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
	for _, der := range chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}

// chain walks from issuer id up through parent_id, excluding the root.
func (s *Server) chain(ctx context.Context, id string) ([][]byte, error) {
	issuers, err := s.store.Issuers(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]inventory.Issuer{}
	for _, is := range issuers {
		byID[is.ID] = is
	}
	var out [][]byte
	for range 8 {
		is, ok := byID[id]
		if !ok || is.IsRoot {
			break
		}
		out = append(out, is.DER)
		id = is.ParentID
	}
	return out, nil
}
