package enroll

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/mica-pki/mica/ca"
)

// identity is what a certificate proves about its holder: its subject and
// its subjectAltNames, normalised so that two spellings of one name
// compare equal. A certificate authenticates only for its own identity:
// a request it authenticates must ask for exactly this identity, and an
// empty SAN list means "exactly this subject", never "no restriction".
type identity struct {
	// subject is "oid=value" per attribute, sorted, whatever the string
	// type (UTF8String, PrintableString). Values are compared as written,
	// not case-folded: the CA copies the CSR's CN into the certificate, so
	// "device 17" would be a different name on the wire.
	subject []string
	names   []string // "dns:x", "ip:x", "uri:x", "email:x", normalised and sorted
	text    string   // the subject as RFC 2253 text, for messages
}

// certIdentity is the identity a client certificate proves.
func certIdentity(c *x509.Certificate) identity {
	return newIdentity(c.Subject, c.DNSNames, c.IPAddresses, c.URIs, c.EmailAddresses)
}

// csrIdentity is the identity a CSR asks for.
func csrIdentity(c *x509.CertificateRequest) identity {
	return newIdentity(c.Subject, c.DNSNames, c.IPAddresses, c.URIs, c.EmailAddresses)
}

// cnIdentity is a subject with only a common name and no SANs: what an
// IDevID's serialNumber attribute maps to.
func cnIdentity(cn string) identity {
	n := pkix.Name{}
	n.FillFromRDNSequence(&pkix.RDNSequence{{{Type: oidCommonName, Value: cn}}})
	return newIdentity(n, nil, nil, nil, nil)
}

// dnsShaped is a common name that the CA would promote to a DNS SAN when
// the profile allows it. The CA copies such a CN into the SANs, so it
// counts as a name on both sides of a comparison.
var dnsShaped = regexp.MustCompile(`^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

func newIdentity(subject pkix.Name, dns []string, ips []net.IP, uris []*url.URL, emails []string) identity {
	id := identity{text: subject.String()}
	for _, atv := range subject.Names {
		v := fmt.Sprint(atv.Value)
		if s, ok := atv.Value.(string); ok {
			v = strings.TrimSpace(s)
		}
		id.subject = append(id.subject, atv.Type.String()+"="+v)
	}
	slices.Sort(id.subject)
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			id.names = append(id.names, s)
		}
	}
	for _, d := range dns {
		add("dns:" + strings.TrimSuffix(strings.ToLower(d), "."))
	}
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			add("ip:" + a.Unmap().String())
		} else {
			add("ip:" + ip.String())
		}
	}
	for _, u := range uris {
		add("uri:" + normalizeURI(u))
	}
	for _, e := range emails {
		local, domain, _ := strings.Cut(e, "@")
		add("email:" + local + "@" + strings.ToLower(domain))
	}
	if cn := strings.TrimSpace(subject.CommonName); cn != "" {
		if a, err := netip.ParseAddr(cn); err == nil {
			add("ip:" + a.Unmap().String())
		} else if l := strings.TrimSuffix(strings.ToLower(cn), "."); dnsShaped.MatchString(l) {
			add("dns:" + l)
		}
	}
	slices.Sort(id.names)
	return id
}

// normalizeURI lower-cases the scheme and host, which RFC 3986 section
// 6.2.2.1 makes case-insensitive; the rest is compared as written.
func normalizeURI(u *url.URL) string {
	c := *u
	c.Scheme = strings.ToLower(c.Scheme)
	c.Host = strings.ToLower(c.Host)
	return c.String()
}

// mismatch returns "" when got asks for exactly the identity id, else a
// reason naming what differs.
func (id identity) mismatch(got identity) string {
	if !slices.Equal(id.subject, got.subject) {
		return fmt.Sprintf("subject %q differs from %q", got.text, id.text)
	}
	if !slices.Equal(id.names, got.names) {
		extra, missing := diff(got.names, id.names), diff(id.names, got.names)
		switch {
		case len(extra) > 0:
			return fmt.Sprintf("%s is not among the certificate's names", extra[0])
		default:
			return fmt.Sprintf("the certificate's name %s is missing", missing[0])
		}
	}
	return ""
}

// diff is the members of a that are not in b.
func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// checkIdentity refuses a CSR that asks for anything but the identity the
// principal's certificate binds it to. Principals without a binding
// (tokens, approval-mapped IDevIDs) pass: their names are checked by the
// token's binding, by the operator, and by the profile.
func (p *principal) checkIdentity(csr *x509.CertificateRequest) error {
	if p.bound == nil {
		return nil
	}
	if reason := p.bound.mismatch(csrIdentity(csr)); reason != "" {
		return ca.Errorf(ca.ErrPolicy, "%s authorises only its own identity: %s", p.boundBy, reason)
	}
	return nil
}

// micaIdentifiers are the names a MICA certificate holds, as ca.Request
// identifiers, so that the CA holds the request to them too: its SANs as
// the store recorded them (the CA's own normalisation, promoted CN
// included) plus its CN. Never nil: a certificate without SANs
// authorises its common name and nothing else.
func micaIdentifiers(c *x509.Certificate, sans []string) []string {
	ids := append([]string{}, sans...)
	if cn := strings.TrimSpace(c.Subject.CommonName); cn != "" {
		ids = append(ids, "cn:"+cn)
	}
	return ids
}
