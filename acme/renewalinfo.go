package acme

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-jose/go-jose/v4"

	"github.com/mica-pki/mica/inventory"
)

// ACME Renewal Information (RFC 9773). A certID is
// base64url(authorityKeyIdentifier) "." base64url(serial DER content).

// renewalInfo answers GET /renewal-info/{certID} with the window in which
// the client should renew: normally the middle of the last third of the
// lifetime; now, for a certificate that is revoked, whose issuer is no
// longer active (rotation), or that has been superseded.
func (s *Server) renewalInfo(w http.ResponseWriter, r *http.Request) {
	c, p := s.certByID(r, chi.URLParam(r, "certID"))
	if p != nil {
		writeProblem(w, p)
		return
	}
	now := s.now()
	life := c.NotAfter.Sub(c.NotBefore)
	start := c.NotAfter.Add(-life / 3)
	end := c.NotAfter.Add(-life / 6)
	urgent := c.State == inventory.StateRevoked
	if !urgent {
		if is, err := s.issuer(r, c.IssuerID); err == nil && is.Status != "active" {
			urgent = true
		}
	}
	if urgent {
		start, end = now.Add(-time.Hour), now.Add(time.Hour)
	}
	w.Header().Set("Retry-After", "21600")
	writeJSON(w, http.StatusOK, "", map[string]any{"suggestedWindow": map[string]string{
		"start": start.UTC().Format(time.RFC3339), "end": end.UTC().Format(time.RFC3339)}})
}

func (s *Server) issuer(r *http.Request, id string) (*inventory.Issuer, error) {
	issuers, err := s.store.Issuers(r.Context())
	if err != nil {
		return nil, err
	}
	for i := range issuers {
		if issuers[i].ID == id {
			return &issuers[i], nil
		}
	}
	return nil, errors.New("no such issuer")
}

// certByID resolves an ARI certID to one of our certificates.
func (s *Server) certByID(r *http.Request, certID string) (*inventory.Certificate, *Problem) {
	akiPart, serialPart, ok := strings.Cut(certID, ".")
	aki, err1 := base64.RawURLEncoding.DecodeString(akiPart)
	serialDER, err2 := base64.RawURLEncoding.DecodeString(serialPart)
	if !ok || err1 != nil || err2 != nil || len(aki) == 0 || len(serialDER) == 0 {
		return nil, malformed("%q is not an ARI certID", certID)
	}
	serial := new(big.Int).SetBytes(serialDER)
	issuers, err := s.store.Issuers(r.Context())
	if err != nil {
		return nil, internal(err)
	}
	for _, is := range issuers {
		ski, _ := hex.DecodeString(is.SKI)
		if len(ski) == 0 {
			if c, err := x509.ParseCertificate(is.DER); err == nil {
				ski = c.SubjectKeyId
			}
		}
		if !bytes.Equal(ski, aki) {
			continue
		}
		c, err := s.store.Certificate(r.Context(), is.ID, serial.Text(16))
		if errors.Is(err, inventory.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, internal(err)
		}
		return c, nil
	}
	return nil, notFound("certificate")
}

// replacedCert checks an order's "replaces": the certificate must be ours
// and ordered by this account (RFC 9773 section 5).
func (s *Server) replacedCert(req *request, certID string) (*inventory.Certificate, *Problem) {
	c, p := s.certByID(req.Request, certID)
	if p != nil {
		return nil, p
	}
	if c.Requester != s.accountURL(req.Request, req.account.ID) {
		return nil, unauthorized("the replaced certificate was not ordered by this account")
	}
	if c.State == inventory.StateSuperseded || c.SupersededBy != "" {
		return nil, problem(probConflict, http.StatusConflict, "the certificate has already been replaced")
	}
	return c, nil
}

// CertID computes the RFC 9773 certID of a certificate.
func CertID(c *x509.Certificate) (string, error) {
	serial, err := asn1.Marshal(c.SerialNumber)
	if err != nil {
		return "", err
	}
	var raw asn1.RawValue
	if _, err := asn1.Unmarshal(serial, &raw); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(c.AuthorityKeyId) + "." + base64.RawURLEncoding.EncodeToString(raw.Bytes), nil
}

// thumbprintOfPublic is the RFC 7638 thumbprint of a certificate key.
func thumbprintOfPublic(pub crypto.PublicKey) (string, error) {
	return thumbprint(&jose.JSONWebKey{Key: pub})
}
