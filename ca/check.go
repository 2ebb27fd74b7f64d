package ca

import (
	"crypto/x509"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// maxNames bounds the SANs of one certificate; beyond it a request is a
// mistake or an attempt to make certificates and CRL work expensive.
const maxNames = 100

// maxCNLength is ub-common-name (RFC 5280 appendix A).
const maxCNLength = 64

// checked is a request that passed step 1: everything in it may go into a
// certificate.
type checked struct {
	pol       *policy
	csr       *x509.CertificateRequest
	keyType   string       // subject key, e.g. "EC-P256"
	cn        string       // subject common name, may be empty
	sans      []identifier // deduplicated, CSR order, promoted CN included
	notBefore time.Time
	notAfter  time.Time
	// The certificate this one renews, normalised; predIssuer is empty
	// when the request did not name the predecessor's issuer.
	predIssuer, predecessor string
}

// sanStrings renders the SANs the way the inventory stores them.
func (c *checked) sanStrings() []string {
	out := make([]string, len(c.sans))
	for i, s := range c.sans {
		out[i] = s.String()
	}
	return out
}

// check is step 1 of issuance. It needs no key and no store, so a bad
// request costs nothing but CPU and is refused before anything is written.
func check(req Request, pol *policy, issuer *x509.Certificate, now time.Time) (*checked, error) {
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return nil, err
	}
	// The key before the signature: a DSA or P-224 key is better reported
	// as what it is than as a signature Go cannot check.
	keyType, err := pol.checkSubjectKey(csr.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := verifyCSRSignature(csr); err != nil {
		return nil, err
	}
	cn, sans, err := checkNames(csr, pol, req.Identifiers)
	if err != nil {
		return nil, err
	}
	nb, na, err := checkValidity(req, pol, issuer, now)
	if err != nil {
		return nil, err
	}
	chk := &checked{pol: pol, csr: csr, keyType: keyType, cn: cn, sans: sans, notBefore: nb, notAfter: na}
	if req.Predecessor != "" {
		// "serial" (same issuer) or "issuerID/serial".
		predIssuer, pred, ok := strings.Cut(req.Predecessor, "/")
		if !ok {
			predIssuer, pred = "", req.Predecessor
		}
		if chk.predecessor, err = normalizeSerial(pred); err != nil {
			return nil, Errorf(ErrPolicy, "predecessor %q is not a certificate serial number", req.Predecessor)
		}
		chk.predIssuer = predIssuer
	}
	return chk, nil
}

// checkNames normalises the CSR's names, promotes a common name that is a
// DNS name or IP address to a SAN (RFC 6125: relying parties look only at
// SANs), and checks every name against the profile and, when given, against
// the identifiers a front end authorised.
func checkNames(csr *x509.CertificateRequest, pol *policy, authorised []string) (string, []identifier, error) {
	var sans []identifier
	seen := map[string]bool{}
	add := func(id identifier) {
		if !seen[id.String()] {
			seen[id.String()] = true
			sans = append(sans, id)
		}
	}
	for _, d := range csr.DNSNames {
		n, err := normalizeDNS(d)
		if err != nil {
			return "", nil, Errorf(ErrBadCSR, "DNS name %q in the CSR is invalid: %v", d, err)
		}
		add(identifier{idDNS, n})
	}
	for _, ip := range csr.IPAddresses {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return "", nil, Errorf(ErrBadCSR, "IP address %v in the CSR is invalid", ip)
		}
		add(identifier{idIP, a.Unmap().String()})
	}
	for _, u := range csr.URIs {
		s, err := checkURI(u)
		if err != nil {
			return "", nil, Wrap(ErrBadCSR, err, err.Error())
		}
		add(identifier{idURI, s})
	}
	for _, e := range csr.EmailAddresses {
		s, err := normalizeEmail(e)
		if err != nil {
			return "", nil, Wrap(ErrBadCSR, err, err.Error())
		}
		add(identifier{idEmail, s})
	}

	cn := strings.TrimSpace(csr.Subject.CommonName)
	cnOnly := false // CN that is not a SAN, allowed by CommonNames
	if cn != "" {
		var asID identifier
		if a, err := netip.ParseAddr(cn); err == nil {
			asID = identifier{idIP, a.Unmap().String()}
		} else if n, err := normalizeDNS(cn); err == nil {
			asID = identifier{idDNS, n}
		}
		switch {
		case asID.kind != "" && seen[asID.String()]:
			cn = asID.value
		case asID.kind != "" && pol.allowIdentifier(asID):
			cn = asID.value
			add(asID)
		case slices.ContainsFunc(sans, func(id identifier) bool { return id.value == cn }):
			// a URI or e-mail SAN repeated as CN
		case pol.allowCN(cn):
			cnOnly = true
		default:
			return "", nil, Errorf(ErrPolicy, "name %q is not allowed by profile %s", cn, pol.Name)
		}
	}
	if cn == "" && len(sans) == 0 {
		return "", nil, Errorf(ErrPolicy, "the CSR names nothing: give a subject common name or subject alternative names")
	}
	if len(sans) > maxNames {
		return "", nil, Errorf(ErrPolicy, "the CSR has %d names; at most %d are allowed", len(sans), maxNames)
	}
	if len(cn) > maxCNLength {
		if cnOnly {
			return "", nil, Errorf(ErrBadCSR, "common name %q is longer than %d characters", cn, maxCNLength)
		}
		cn = "" // the name is in the SANs; a long CN is simply left out
	}

	for _, id := range sans {
		if !pol.allowIdentifier(id) {
			if id.kind == idDNS {
				return "", nil, Errorf(ErrPolicy, "name %q is not allowed by profile %s", id.value, pol.Name)
			}
			return "", nil, Errorf(ErrPolicy, "%s %q is not allowed by profile %s", kindWord(id.kind), id.value, pol.Name)
		}
	}

	if authorised != nil {
		if err := matchAuthorised(cn, cnOnly, sans, authorised); err != nil {
			return "", nil, err
		}
	}
	return cn, sans, nil
}

// matchAuthorised checks the names against the set a front end authorised:
// the SANs must equal the set, and a CN that is not a SAN needs a "cn:"
// entry. Extra names in either direction are refused by name.
func matchAuthorised(cn string, cnOnly bool, sans []identifier, authorised []string) error {
	want := map[string]bool{}
	wantCN := map[string]bool{}
	for _, s := range authorised {
		id, err := parseIdentifier(s)
		if err != nil {
			return Wrap(ErrInternal, err, "the front end passed a malformed identifier")
		}
		if id.kind == idCN {
			wantCN[id.value] = true
			continue
		}
		want[id.String()] = true
	}
	got := map[string]bool{}
	for _, id := range sans {
		got[id.String()] = true
		if !want[id.String()] {
			return Errorf(ErrPolicy, "name %q in the CSR is not among the authorised identifiers", id.String())
		}
	}
	for w := range want {
		if !got[w] {
			return Errorf(ErrPolicy, "authorised identifier %q is missing from the CSR", w)
		}
	}
	if cnOnly && !wantCN[cn] {
		return Errorf(ErrPolicy, "common name %q is not among the authorised identifiers", cn)
	}
	return nil
}

func kindWord(kind string) string {
	switch kind {
	case idIP:
		return "IP address"
	case idURI:
		return "URI"
	case idEmail:
		return "e-mail address"
	}
	return "name"
}

// checkValidity works out notBefore and notAfter and holds them to the
// profile's cap and to the issuer's own validity: a certificate that
// outlives its issuer fails path validation at the issuer's expiry, so
// refusing is more honest than clamping silently.
func checkValidity(req Request, pol *policy, issuer *x509.Certificate, now time.Time) (time.Time, time.Time, error) {
	now = now.UTC().Truncate(time.Second)
	earliest := now.Add(-pol.Backdate)
	nb := req.NotBefore.UTC().Truncate(time.Second)
	switch {
	case req.NotBefore.IsZero():
		nb = earliest
	case nb.Before(earliest):
		return nb, nb, Errorf(ErrLifetime, "notBefore %s is earlier than now minus the profile's backdate of %s",
			nb.Format(time.RFC3339), fmtDuration(pol.Backdate))
	}
	na := req.NotAfter.UTC().Truncate(time.Second)
	if req.NotAfter.IsZero() {
		na = nb.Add(pol.DefaultLifetime)
	}
	if !na.After(nb) {
		return nb, na, Errorf(ErrLifetime, "notAfter %s is not after notBefore %s", na.Format(time.RFC3339), nb.Format(time.RFC3339))
	}
	if life := na.Sub(nb); life > pol.MaxLifetime {
		return nb, na, Errorf(ErrLifetime, "requested lifetime of %s exceeds the maximum of %s for profile %s",
			fmtDuration(life), fmtDuration(pol.MaxLifetime), pol.Name)
	}
	if issuer != nil && na.After(issuer.NotAfter) {
		return nb, na, Errorf(ErrLifetime, "notAfter %s is after the issuing CA's notAfter %s",
			na.Format(time.RFC3339), issuer.NotAfter.UTC().Format(time.RFC3339))
	}
	return nb, na, nil
}

// describeNames is a short form of the request for denial events.
func describeNames(csr *x509.CertificateRequest) []string {
	if csr == nil {
		return nil
	}
	var out []string
	if csr.Subject.CommonName != "" {
		out = append(out, "cn:"+csr.Subject.CommonName)
	}
	out = append(out, csr.DNSNames...)
	for _, ip := range csr.IPAddresses {
		out = append(out, ip.String())
	}
	for _, u := range csr.URIs {
		out = append(out, u.String())
	}
	out = append(out, csr.EmailAddresses...)
	return out
}
