package web

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/mica-pki/mica/inventory"
)

// certLink points at a certificate page.
type certLink struct {
	IssuerID, Serial string
	Note             string // e.g. "issuer retired" when several issuers share the serial
}

// successorLinks resolves c.SupersededBy, which names only a serial: after
// a CA rotation the successor lives under another issuer. Candidates are
// every certificate with that serial; those that name c as predecessor
// win, then those under an active issuer come first.
func (s *Server) successorLinks(ctx context.Context, c *inventory.Certificate, issuers []inventory.Issuer) []certLink {
	if c.SupersededBy == "" {
		return nil
	}
	page, err := s.store.Search(ctx, inventory.SearchFilter{CertFilter: inventory.CertFilter{Serial: c.SupersededBy, Limit: 20, Now: s.now()}})
	if err != nil || len(page.Certificates) == 0 {
		if err != nil {
			s.log.Error("certificate page: find successor", "err", err)
		}
		return []certLink{{IssuerID: c.IssuerID, Serial: c.SupersededBy}}
	}
	cands := page.Certificates
	var named []inventory.Certificate
	for _, x := range cands {
		if x.Predecessor == c.Serial && (x.PredecessorIssuerID == c.IssuerID || (x.PredecessorIssuerID == "" && x.IssuerID == c.IssuerID)) {
			named = append(named, x)
		}
	}
	if len(named) > 0 {
		cands = named
	}
	status := map[string]string{}
	for _, is := range issuers {
		status[is.ID] = is.Status
	}
	out := make([]certLink, 0, len(cands))
	for _, x := range cands {
		l := certLink{IssuerID: x.IssuerID, Serial: x.Serial}
		if len(cands) > 1 {
			l.Note = "issuer " + x.IssuerID + " " + or(status[x.IssuerID], "unknown")
		}
		out = append(out, l)
	}
	slices.SortStableFunc(out, func(a, b certLink) int {
		aa, ba := status[a.IssuerID] == "active", status[b.IssuerID] == "active"
		switch {
		case aa && !ba:
			return -1
		case ba && !aa:
			return 1
		}
		return 0
	})
	return out
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// certFields are the decoded extensions the certificate page shows.
type certFields struct {
	KeyUsage, EKU, CRLDP, OCSP, CAIssuers []string
	BasicConstraints, SKI, AKI            string
	SigAlg, PubKey                        string
}

func decodeFields(x *x509.Certificate) certFields {
	f := certFields{SigAlg: x.SignatureAlgorithm.String(), PubKey: pubKeyText(x),
		CRLDP: x.CRLDistributionPoints, OCSP: x.OCSPServer, CAIssuers: x.IssuingCertificateURL}
	for _, u := range x.ExtKeyUsage {
		f.EKU = append(f.EKU, ekuName(u))
	}
	for _, ku := range keyUsageNames {
		if x.KeyUsage&ku.bit != 0 {
			f.KeyUsage = append(f.KeyUsage, ku.name)
		}
	}
	switch {
	case !x.BasicConstraintsValid:
		f.BasicConstraints = "absent"
	case x.IsCA && (x.MaxPathLen > 0 || x.MaxPathLenZero):
		f.BasicConstraints = fmt.Sprintf("CA, path length %d", x.MaxPathLen)
	case x.IsCA:
		f.BasicConstraints = "CA, no path length limit"
	default:
		f.BasicConstraints = "not a CA"
	}
	f.SKI, f.AKI = colonHex(x.SubjectKeyId), colonHex(x.AuthorityKeyId)
	return f
}

var keyUsageNames = []struct {
	bit  x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "digitalSignature"}, {x509.KeyUsageContentCommitment, "contentCommitment"},
	{x509.KeyUsageKeyEncipherment, "keyEncipherment"}, {x509.KeyUsageDataEncipherment, "dataEncipherment"},
	{x509.KeyUsageKeyAgreement, "keyAgreement"}, {x509.KeyUsageCertSign, "keyCertSign"}, {x509.KeyUsageCRLSign, "cRLSign"},
	{x509.KeyUsageEncipherOnly, "encipherOnly"}, {x509.KeyUsageDecipherOnly, "decipherOnly"},
}

func pubKeyText(x *x509.Certificate) string {
	switch k := x.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d bits", k.N.BitLen())
	case *ecdsa.PublicKey:
		return fmt.Sprintf("ECDSA %s (%d bits)", k.Curve.Params().Name, k.Curve.Params().BitSize)
	case ed25519.PublicKey:
		return "Ed25519 (256 bits)"
	}
	return x.PublicKeyAlgorithm.String()
}

func colonHex(b []byte) string {
	if len(b) == 0 {
		return "—"
	}
	h := hex.EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

// writePEMChain answers GET …/{serial}.pem with the leaf and its issuing
// CA certificate (application/pem-certificate-chain, RFC 8555 §9.1): a
// server needs both, and the root is left out as the relying party's
// trust anchor.
func (s *Server) writePEMChain(w http.ResponseWriter, r *http.Request, c *inventory.Certificate) {
	if len(c.DER) == 0 {
		http.NotFound(w, r)
		return
	}
	blocks := []*pem.Block{{Type: "CERTIFICATE", Bytes: c.DER}}
	is, err := s.store.Issuer(r.Context(), c.IssuerID)
	switch {
	case err != nil && !isNotFound(err):
		s.log.Error("PEM chain: read issuer", "issuer", c.IssuerID, "err", err)
		http.Error(w, "the issuing CA certificate cannot be read; try again", http.StatusServiceUnavailable)
		return
	case err == nil && !is.IsRoot && len(is.DER) > 0:
		blocks = append(blocks, &pem.Block{Type: "CERTIFICATE", Bytes: is.DER})
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.pem"`, inventory.FormatSerial(c.Serial)))
	for _, b := range blocks {
		_ = pem.Encode(w, b)
	}
}
