package enroll

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// principal is who a request authenticated as.
type principal struct {
	requester   string   // audit actor and certificate requester
	identifiers []string // names a token binds; nil: the CSR's names
	tokenID     string   // set when a one-time token paid for this request
	cert        *x509.Certificate
	record      *inventory.Certificate // the MICA record of cert, when MICA issued it
	// bound is the identity cert authorises, which a CSR must ask for
	// exactly (checkIdentity); nil when a token or an operator names it.
	bound   *identity
	boundBy string // "the client certificate", for refusal messages
}

// clientCert returns the client certificate chain of r: the TLS peer's,
// or, for requests from a trusted proxy only, the one in the configured
// header. A header from any other address is ignored (and logged): anyone
// can send headers.
func (s *Server) clientCert(r *http.Request) ([]*x509.Certificate, error) {
	if h := s.cfg.ClientCertHeader; h != "" && r.Header.Get(h) != "" {
		if !s.fromTrustedProxy(r) {
			s.log.Warn("ignoring client certificate header from untrusted address", "remote", r.RemoteAddr, "header", h)
		} else {
			c, err := parseHeaderCert(r.Header.Get(h))
			if err != nil {
				return nil, ca.Wrap(ca.ErrUnauthorized, err, "malformed client certificate header from proxy")
			}
			return []*x509.Certificate{c}, nil
		}
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return r.TLS.PeerCertificates, nil
	}
	return nil, nil
}

func (s *Server) fromTrustedProxy(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range s.proxies {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// parseHeaderCert reads a certificate as proxies forward it: URL-escaped
// PEM (nginx $ssl_client_escaped_cert, Envoy), PEM with spaces for
// newlines, or base64 DER.
func parseHeaderCert(v string) (*x509.Certificate, error) {
	if u, err := url.QueryUnescape(v); err == nil && strings.Contains(u, "-----BEGIN") {
		v = u
	}
	if strings.Contains(v, "-----BEGIN") {
		body := strings.TrimSpace(v)
		body = strings.TrimPrefix(body, "-----BEGIN CERTIFICATE-----")
		body = strings.TrimSuffix(body, "-----END CERTIFICATE-----")
		v = strings.Join(strings.Fields(body), "")
	}
	der, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		if b, _ := pem.Decode([]byte(v)); b != nil {
			der = b.Bytes
		} else {
			return nil, err
		}
	}
	return x509.ParseCertificate(der)
}

// verifyMICA checks chain[0] against MICA's hierarchy at the current time
// and against the store: it must be recorded as issued (not revoked, not
// superseded, not expired). It returns the record.
func (s *Server) verifyMICA(r *http.Request, chain []*x509.Certificate) (*inventory.Certificate, error) {
	leaf := chain[0]
	roots := x509.NewCertPool()
	roots.AddCert(s.ca.Root())
	inter := x509.NewCertPool()
	issuers, err := s.ca.Issuers(r.Context())
	if err != nil {
		return nil, ca.Wrap(ca.ErrUnavailable, err, "issuer list unavailable")
	}
	for _, iss := range issuers {
		if c, err := x509.ParseCertificate(iss.DER); err == nil {
			if iss.IsRoot {
				roots.AddCert(c)
			} else {
				inter.AddCert(c)
			}
		}
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	paths, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: s.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil || len(paths[0]) < 2 {
		return nil, ca.Wrap(ca.ErrUnauthorized, err, "client certificate is not a valid MICA certificate")
	}
	parent := paths[0][1]
	issuerID := ""
	for _, iss := range issuers {
		if string(iss.DER) == string(parent.Raw) {
			issuerID = iss.ID
		}
	}
	rec, err := s.store.Certificate(r.Context(), issuerID, leaf.SerialNumber.Text(16))
	if errors.Is(err, inventory.ErrNotFound) {
		return nil, ca.Errorf(ca.ErrUnauthorized, "client certificate is not in MICA's inventory")
	}
	if err != nil {
		return nil, ca.Wrap(ca.ErrUnavailable, err, "inventory unavailable")
	}
	if st := rec.EffectiveState(s.now()); st != inventory.StateIssued {
		return nil, ca.Errorf(ca.ErrUnauthorized, "client certificate is %s", st)
	}
	return rec, nil
}

// verifyExtra checks chain[0] against the label's extra trusted roots
// (manufacturer IDevID roots); those certificates are not in the store.
func (s *Server) verifyExtra(l *label, chain []*x509.Certificate) error {
	if l.roots == nil {
		return errors.New("label trusts no extra roots")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: l.roots, Intermediates: inter, CurrentTime: s.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

func certRequester(c *x509.Certificate) string {
	return fmt.Sprintf("cert:%s/%s", c.Subject.CommonName, c.SerialNumber.Text(16))
}

// authenticate admits a request to enroll under l: by client certificate
// when the label accepts them and one is presented, else by a one-time
// token. A certificate binds the request to its own identity (MICA
// certificates) or to the identity the label maps it to (IDevIDs, see
// Label.IDevIDIdentity). A redeemed token must be given back with
// s.release if the enrollment it paid for does not happen.
func (s *Server) authenticate(r *http.Request, l *label) (*principal, error) {
	var idev *principal // an IDevID that still needs the token it is paired with
	if l.ClientCerts {
		chain, err := s.clientCert(r)
		if err != nil {
			return nil, err
		}
		if len(chain) > 0 {
			rec, micaErr := s.verifyMICA(r, chain)
			if micaErr == nil {
				// A MICA certificate vouches only for its own identity: it
				// can get another certificate for it (a second key, a lost
				// one), never for other names, and a certificate without
				// SANs vouches for its subject alone.
				id := certIdentity(chain[0])
				return &principal{requester: certRequester(chain[0]), cert: chain[0], record: rec,
					bound: &id, boundBy: "the client certificate", identifiers: micaIdentifiers(chain[0], rec.SANs)}, nil
			}
			if s.verifyExtra(l, chain) == nil {
				p, err := idevidPrincipal(l, chain[0])
				if err != nil || l.IDevIDIdentity != IDevIDToken {
					return p, err
				}
				idev = p
			} else if !l.Tokens {
				return nil, micaErr
			}
		}
	}
	if !l.Tokens {
		return nil, ca.Errorf(ca.ErrUnauthorized, "this EST label needs a client certificate")
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		if idev != nil {
			return nil, ca.Errorf(ca.ErrUnauthorized, "this EST label needs an enrollment token with the manufacturer certificate")
		}
		return nil, ca.Errorf(ca.ErrUnauthorized, "credentials required")
	}
	sum := sha256.Sum256([]byte(pass))
	tok, err := s.store.UseESTToken(r.Context(), user, l.name, hex.EncodeToString(sum[:]), s.sourceAddr(r), s.now())
	switch {
	case errors.Is(err, inventory.ErrNotFound):
		return nil, ca.Errorf(ca.ErrUnauthorized, "invalid credentials")
	case errors.Is(err, inventory.ErrConflict):
		return nil, ca.Errorf(ca.ErrUnauthorized, "enrollment token already used or expired")
	case err != nil:
		return nil, ca.Wrap(ca.ErrUnavailable, err, "token store unavailable")
	}
	p := &principal{requester: "est-token:" + tok.ID, tokenID: tok.ID}
	if idev != nil {
		p.requester, p.cert = idev.requester+"+est-token:"+tok.ID, idev.cert
	}
	if len(tok.Names) > 0 {
		p.identifiers = tok.Names
	}
	return p, nil
}

// idevidPrincipal is a manufacturer certificate admitted under l, bound to
// the identity the label maps it to.
func idevidPrincipal(l *label, c *x509.Certificate) (*principal, error) {
	p := &principal{requester: "idevid:" + certRequester(c)[len("cert:"):], cert: c}
	switch l.IDevIDIdentity {
	case "", IDevIDSubject:
		id := certIdentity(c)
		p.bound, p.boundBy = &id, "the manufacturer certificate"
	case IDevIDSerialNumber:
		sn := strings.TrimSpace(c.Subject.SerialNumber)
		if sn == "" {
			return nil, ca.Errorf(ca.ErrUnauthorized, "the manufacturer certificate has no serialNumber attribute, which EST label %s maps to the device's name", l.name)
		}
		id := cnIdentity(sn)
		p.bound, p.boundBy = &id, "the manufacturer certificate (by its serialNumber "+sn+")"
	case IDevIDApproval, IDevIDToken:
		// The operator who approves, or the token, names what is issued.
	}
	return p, nil
}

// release hands back a token whose enrollment did not happen.
func (s *Server) release(r *http.Request, p *principal) {
	if p == nil || p.tokenID == "" {
		return
	}
	if err := s.store.ReleaseESTToken(r.Context(), p.tokenID); err != nil {
		s.log.Error("releasing EST token", "token", p.tokenID, "err", err)
	}
}
