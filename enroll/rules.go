package enroll

import (
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/mica-pki/mica/ca"
)

// opRule is how one EST operation is admitted. Together with the label's
// settings it is the one rule table every handler consults through
// [Server.admit]: no handler decides on its own who may do what.
type opRule struct {
	method string
	// csrBody: a POST whose body is a PKCS#10 request. It is rate
	// limited, its Content-Type must be application/pkcs10 (or absent),
	// and it needs a credential the label accepts.
	csrBody bool
	// renew: the credential is the MICA certificate being renewed, which
	// must come from the label's profile (or its renew_profiles).
	renew bool
	// keygen: needs the label's serverkeygen pool.
	keygen bool
	// holds: on an approval label the request is held for an operator.
	holds bool
}

// opRules are the operations RFC 7030 defines; no label may be named like
// one.
var opRules = map[string]opRule{
	"cacerts":        {method: http.MethodGet},
	"csrattrs":       {method: http.MethodGet},
	"simpleenroll":   {method: http.MethodPost, csrBody: true, holds: true},
	"simplereenroll": {method: http.MethodPost, csrBody: true, renew: true, holds: true},
	"serverkeygen":   {method: http.MethodPost, csrBody: true, keygen: true},
}

// validateRules checks the combinations of label settings the rule table
// cannot honour.
func (l Label) validateRules(name string, profileExists func(string) bool) error {
	switch l.IDevIDIdentity {
	case "", IDevIDSubject, IDevIDSerialNumber:
	case IDevIDApproval:
		if !l.Approval {
			return fmt.Errorf("est.labels.%s.idevid_identity: %q needs approval: true", name, l.IDevIDIdentity)
		}
	case IDevIDToken:
		if !l.Tokens {
			return fmt.Errorf("est.labels.%s.idevid_identity: %q needs tokens: true", name, l.IDevIDIdentity)
		}
	default:
		return fmt.Errorf("est.labels.%s.idevid_identity: %q is not one of subject, serial_number, approval, token", name, l.IDevIDIdentity)
	}
	if l.IDevIDIdentity != "" && len(l.TrustedRoots) == 0 {
		return fmt.Errorf("est.labels.%s.idevid_identity: set without trusted_roots", name)
	}
	if len(l.TrustedRoots) > 0 && !l.ClientCerts {
		return fmt.Errorf("est.labels.%s.trusted_roots: needs client_certs: true", name)
	}
	// A server-generated key cannot wait for an operator: it would have to
	// be kept, unsealed for delivery, until the device comes back.
	if l.ServerKeyGen != nil && l.Approval {
		return fmt.Errorf("est.labels.%s: serverkeygen cannot be combined with approval", name)
	}
	for _, p := range l.RenewProfiles {
		if !profileExists(p) {
			return fmt.Errorf("est.labels.%s.renew_profiles: unknown profile %q", name, p)
		}
	}
	return nil
}

// admitted is a request the label's rules let through to issuance.
type admitted struct {
	p    *principal
	der  []byte // the CSR
	csr  *x509.CertificateRequest
	pred string // simplereenroll: "issuerID/serial" of the certificate renewed
}

// renewPrefix marks a held re-enrollment: only simplereenroll with the
// same certificate picks it up, so its renewal supersedes that certificate.
const renewPrefix = "renew:"

// admit applies the label's rules for op to a request with a CSR body. It
// answers the client itself and returns nil when the request is refused,
// held for approval, or a held request is picked up; otherwise the caller
// issues. A token redeemed here must be released if issuance fails.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, l *label, op string) *admitted {
	rule := opRules[op]
	if rule.keygen && l.pool == nil {
		s.fail(w, r, op, "", ca.Errorf(ca.ErrNotFound, "serverkeygen is not enabled for EST label %s", l.name))
		return nil
	}
	if rule.keygen {
		// Before the rate unit, the credential and the pooled key: a
		// client that cannot take the key must be able to retry elsewhere
		// with the same token (keydelivery.go).
		if err := checkDeliverable(r, l); err != nil {
			s.fail(w, r, op, "", err)
			return nil
		}
	}
	if !s.allow(w, r, op) {
		return nil
	}
	if err := checkContentType(r); err != nil {
		s.fail(w, r, op, "", err)
		return nil
	}
	der, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, op, "", badBody(err))
		return nil
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		s.fail(w, r, op, "", ca.Wrap(ca.ErrBadCSR, err, "malformed CSR"))
		return nil
	}
	a := &admitted{der: der, csr: csr}
	if rule.renew {
		p, pred, err := s.authenticateRenewal(r, l)
		if err != nil {
			s.fail(w, r, op, requesterOf(p), err)
			return nil
		}
		a.p, a.pred = p, pred
		if l.Approval && s.pickUp(w, r, l, op, der, a) {
			return nil
		}
	} else {
		if l.Approval && rule.holds && s.pickUp(w, r, l, op, der, nil) {
			return nil
		}
		if a.p, err = s.authenticate(r, l); err != nil {
			s.fail(w, r, op, "", err)
			return nil
		}
	}
	refuse := func(err error) *admitted {
		s.release(r, a.p)
		s.fail(w, r, op, a.p.requester, err)
		return nil
	}
	if err := s.checkTLSUnique(r, l, der); err != nil {
		return refuse(err)
	}
	if err := a.p.checkIdentity(csr); err != nil {
		return refuse(err)
	}
	if l.Approval && rule.holds {
		s.park(w, r, l, op, a)
		return nil
	}
	if l.Approval {
		// Config validation refuses this combination; never issue past it.
		return refuse(ca.Errorf(ca.ErrPolicy, "EST label %s holds requests for approval; %s cannot be held", l.name, op))
	}
	return a
}

func requesterOf(p *principal) string {
	if p == nil {
		return ""
	}
	return p.requester
}

// errMediaType marks a request body declared as something other than a
// PKCS#10 request; status answers 415 for it.
var errMediaType = errors.New("unsupported media type")

// checkContentType holds a CSR body to RFC 7030 section 4.2.1: it is
// application/pkcs10. A missing Content-Type stays lenient (RFC 8951
// leniency: some device scripts send none); anything else declared, a
// form encoding or JSON included, is refused, which also keeps browsers'
// simple cross-site POSTs out.
func checkContentType(r *http.Request) error {
	v := r.Header.Get("Content-Type")
	if strings.TrimSpace(v) == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(v)
	if err == nil && mt == mediaPKCS10 {
		return nil
	}
	shown := mt
	if err != nil || len(shown) > 64 {
		shown = "an unparsable media type"
	}
	return &ca.Error{Kind: ca.ErrBadCSR, Err: errMediaType,
		Msg: fmt.Sprintf("the request body must be sent as Content-Type: %s (RFC 7030 section 4.2.1), not %s", mediaPKCS10, shown)}
}

// authenticateRenewal admits the certificate a simplereenroll renews: the
// label must accept client certificates, the certificate must be one MICA
// issued and still holds as issued, and it must come from the label's
// profile or one of its renew_profiles. It returns the principal, bound to
// the certificate's identity, and the predecessor reference.
func (s *Server) authenticateRenewal(r *http.Request, l *label) (*principal, string, error) {
	if !l.ClientCerts {
		return nil, "", ca.Errorf(ca.ErrUnauthorized, "EST label %s does not accept client certificates, so it cannot re-enroll", l.name)
	}
	chain, err := s.clientCert(r)
	if err != nil {
		return nil, "", err
	}
	if len(chain) == 0 {
		return nil, "", ca.Errorf(ca.ErrUnauthorized, "re-enrollment needs the current certificate as TLS client certificate")
	}
	p := &principal{requester: certRequester(chain[0])}
	rec, err := s.verifyMICA(r, chain)
	if err != nil {
		return p, "", err
	}
	if rec.Profile != l.Profile && !slices.Contains(l.RenewProfiles, rec.Profile) {
		return p, "", ca.Errorf(ca.ErrPolicy, "the certificate was issued under profile %s; EST label %s renews only %s certificates",
			rec.Profile, l.name, strings.Join(append([]string{l.Profile}, l.RenewProfiles...), ", "))
	}
	id := certIdentity(chain[0])
	p.cert, p.record, p.bound, p.boundBy = chain[0], rec, &id, "the certificate being renewed"
	p.identifiers = micaIdentifiers(chain[0], rec.SANs)
	pred := rec.Serial
	if rec.IssuerID != "" {
		pred = rec.IssuerID + "/" + rec.Serial
	}
	return p, pred, nil
}
