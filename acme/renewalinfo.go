package acme

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
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
// lifetime; now (see renewNow) for a certificate that is revoked, whose
// key is blocked, or whose issuer is being rotated out. With an early
// migration period configured (key_policy.early_migration), a certificate
// of a superseded issuer gets a slot within that period after the new
// issuer activated instead of "now" (see migrationWindow).
func (s *Server) renewalInfo(w http.ResponseWriter, r *http.Request) {
	c, p := s.certByID(r, chi.URLParam(r, "certID"))
	if p != nil {
		s.m.problem(p)
		writeProblem(w, p)
		return
	}
	now := s.now()
	life := c.NotAfter.Sub(c.NotBefore)
	start := c.NotAfter.Add(-life / 3)
	end := c.NotAfter.Add(-life / 6)
	urgent, successor, err := s.renewNow(r.Context(), c)
	if err != nil {
		p := internal(err)
		s.m.problem(p)
		s.log.Error("acme: renewal info", "err", err)
		writeProblem(w, p)
		return
	}
	period := time.Duration(0)
	if m, ok := s.ca.(earlyMigrator); ok {
		period = m.EarlyMigration()
	}
	switch {
	case urgent == "issuer rotated" && period > 0:
		ms, me := migrationWindow(successor, period, c.Serial)
		if ms.Before(start) {
			start, end = ms, me
		}
		s.log.Debug("acme: ARI suggests migrating to the new issuer", "issuer", c.IssuerID, "serial", inventory.FormatSerial(c.Serial), "start", start)
	case urgent != "":
		s.log.Debug("acme: ARI suggests renewing now", "issuer", c.IssuerID, "serial", inventory.FormatSerial(c.Serial), "why", urgent)
		start, end = now.Add(-time.Hour), now.Add(time.Hour)
	}
	w.Header().Set("Retry-After", "21600")
	writeJSON(w, http.StatusOK, "", map[string]any{"suggestedWindow": map[string]string{
		"start": start.UTC().Format(time.RFC3339), "end": end.UTC().Format(time.RFC3339)}})
}

// activeIssuer is what a CA that rotates issuing CAs reports as the one
// currently signing. *ca.CA satisfies it; for a CA without it only the
// issuer's status in the inventory tells of a rotation.
type activeIssuer interface{ IssuerID() string }

// earlyMigrator is a CA with a key-policy early-migration period
// (*ca.CA: SetEarlyMigration). Zero or absent: certificates of a
// superseded issuer are told to renew at once.
type earlyMigrator interface{ EarlyMigration() time.Duration }

// migrationWindow spreads the renewals of a superseded issuer's
// certificates over period after the new issuer activated: each serial
// gets a deterministic slot (the same answer on every replica and every
// poll, so clients do not chase a moving window) in the first nine
// tenths, and a window a tenth of the period long from there. A client
// polling after its slot has passed renews at once, as RFC 9773 asks.
func migrationWindow(activated time.Time, period time.Duration, serial string) (start, end time.Time) {
	h := sha256.Sum256([]byte(serial))
	frac := float64(binary.BigEndian.Uint64(h[:8])) / float64(^uint64(0))
	start = activated.Add(time.Duration(frac * float64(period) * 0.9))
	return start, start.Add(period / 10)
}

// renewNow says why c should be renewed at once, or "" when its normal
// window applies: it is revoked, its public key is blocked (compromised),
// or its issuer is being rotated out — marked retiring or retired in the
// inventory, or older than the CA's active issuing CA.
//
// For "issuer rotated" it also returns when the successor activated.
func (s *Server) renewNow(ctx context.Context, c *inventory.Certificate) (string, time.Time, error) {
	if c.State == inventory.StateRevoked {
		return "revoked", time.Time{}, nil
	}
	if c.PublicKeySHA256 != "" {
		_, err := s.store.KeyBlocked(ctx, c.PublicKeySHA256)
		switch {
		case err == nil:
			return "key blocked", time.Time{}, nil
		case !errors.Is(err, inventory.ErrNotFound):
			return "", time.Time{}, err
		}
	}
	issuers, err := s.store.Issuers(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	var own, active *inventory.Issuer
	activeID := ""
	if a, ok := s.ca.(activeIssuer); ok {
		activeID = a.IssuerID()
	}
	for i := range issuers {
		switch issuers[i].ID {
		case c.IssuerID:
			own = &issuers[i]
		case activeID:
			active = &issuers[i]
		}
	}
	if own != nil && own.Status != "active" && own.Status != "" {
		return "issuer " + own.Status, time.Time{}, nil
	}
	// The CA signs with a newer issuing CA than the certificate's. Newer,
	// not just different: during a rolling restart a replica still on
	// the previous issuer must not send the new issuer's certificates
	// back for renewal.
	if own != nil && active != nil && active.NotBefore.After(own.NotBefore) {
		return "issuer rotated", active.NotBefore, nil
	}
	return "", time.Time{}, nil
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
			continue // another CA certificate for the same key (cross-signed, re-certified)
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
