package acme

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
)

// certificate answers POST-as-GET on /cert/{order}[/{alt}]: the leaf and
// its chain up to, not including, the root, PEM (RFC 8555 section 7.4.2).
//
// When the store holds more than one CA certificate for the leaf's issuer
// — the same subject and key, re-certified or cross-signed during a
// rotation — each further one is an alternate chain at /cert/{order}/{n},
// n ≥ 1, and every response links the others with rel="alternate".
func (s *Server) certificate(w http.ResponseWriter, req *request) error {
	if !req.postAsGet {
		return malformed("certificates are downloaded with POST-as-GET")
	}
	orderID := chi.URLParam(req.Request, "id")
	alt := 0
	if a := chi.URLParam(req.Request, "alt"); a != "" {
		n, err := strconv.Atoi(a)
		if err != nil || n < 1 || strconv.Itoa(n) != a {
			return notFound("certificate")
		}
		alt = n
	}
	o, err := s.store.ACMEOrder(req.Context(), orderID)
	if err != nil || o.AccountID != req.account.ID || o.Status != statusValid || o.CertSerial == "" {
		return notFound("certificate")
	}
	c, err := s.store.Certificate(req.Context(), o.CertIssuerID, o.CertSerial)
	if err != nil {
		return internal(err)
	}
	chains, err := s.chains(req.Context(), c.IssuerID)
	if err != nil {
		return internal(err)
	}
	if alt >= len(chains) {
		return notFound("certificate")
	}
	for i := range chains {
		if i == alt {
			continue
		}
		u := s.url(req.Request, "cert", orderID)
		if i > 0 {
			u += "/" + strconv.Itoa(i)
		}
		w.Header().Add("Link", fmt.Sprintf(`<%s>;rel="alternate"`, u))
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
	for _, der := range chains[alt] {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}

// chains returns the chains above a leaf of issuer id: first the one
// through id itself, then one through each other CA certificate in the
// store with the same subject and subject key identifier (so the same
// key signed the leaf), ordered by issuer id. Revoked CA certificates
// are not offered; with a CA that reports its serving issuers (*ca.CA,
// ServingIssuers) only those are: a re-certification scheduled for later
// or already expired is no chain a relying party can build today.
func (s *Server) chains(ctx context.Context, id string) ([][][]byte, error) {
	issuers, err := s.store.Issuers(ctx)
	if err != nil {
		return nil, err
	}
	offer := func(string) bool { return true }
	if sv, ok := s.ca.(servingIssuers); ok {
		serving, err := sv.ServingIssuers(ctx)
		if err != nil {
			return nil, err
		}
		ids := map[string]bool{}
		for _, is := range serving {
			ids[is.ID] = true
		}
		offer = func(id string) bool { return ids[id] }
	}
	byID := map[string]inventory.Issuer{}
	for _, is := range issuers {
		byID[is.ID] = is
	}
	own, ok := byID[id]
	if !ok {
		return [][][]byte{nil}, nil
	}
	out := [][][]byte{chainFrom(byID, id)}
	mine, err := x509.ParseCertificate(own.DER)
	if err != nil {
		// No alternates for an issuer we cannot parse; its own chain
		// still serves.
		return out, nil
	}
	var alts []string
	for _, is := range issuers {
		if is.ID == id || is.IsRoot || is.Status == "revoked" || bytes.Equal(is.DER, own.DER) || !offer(is.ID) {
			continue
		}
		other, err := x509.ParseCertificate(is.DER)
		if err != nil {
			continue
		}
		if bytes.Equal(other.RawSubject, mine.RawSubject) && len(mine.SubjectKeyId) > 0 && bytes.Equal(other.SubjectKeyId, mine.SubjectKeyId) &&
			bytes.Equal(other.RawSubjectPublicKeyInfo, mine.RawSubjectPublicKeyInfo) {
			alts = append(alts, is.ID)
		}
	}
	slices.SortFunc(alts, strings.Compare)
	for _, a := range alts {
		out = append(out, chainFrom(byID, a))
	}
	return out, nil
}

// servingIssuers is a CA that knows which issuing CAs relying parties
// can meet now: the active one and those still serving after a rotation.
type servingIssuers interface {
	ServingIssuers(ctx context.Context) ([]inventory.Issuer, error)
}

// chainFrom walks from issuer id up through parent_id, excluding the root.
func chainFrom(byID map[string]inventory.Issuer, id string) [][]byte {
	var out [][]byte
	for range 8 {
		is, ok := byID[id]
		if !ok || is.IsRoot {
			break
		}
		out = append(out, is.DER)
		id = is.ParentID
	}
	return out
}
