package ca

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/net/idna"
)

// Identifier kinds, as written in Request.Identifiers and in the store's
// SAN lists ("dns:a.test"). "cn" is only valid in Request.Identifiers, to
// authorise a subject common name that is not also a SAN.
const (
	idDNS   = "dns"
	idIP    = "ip"
	idURI   = "uri"
	idEmail = "email"
	idCN    = "cn"
)

// identifier is one normalised name.
type identifier struct{ kind, value string }

func (id identifier) String() string { return id.kind + ":" + id.value }

// parseIdentifier reads "kind:value" and normalises value the way CSR names
// are normalised, so the two can be compared as strings.
func parseIdentifier(s string) (identifier, error) {
	kind, value, ok := strings.Cut(s, ":")
	if !ok || value == "" {
		return identifier{}, fmt.Errorf("identifier %q is not of the form kind:value", s)
	}
	switch strings.ToLower(kind) {
	case idDNS:
		n, err := normalizeDNS(value)
		return identifier{idDNS, n}, err
	case idIP:
		a, err := netip.ParseAddr(value)
		if err != nil {
			return identifier{}, fmt.Errorf("identifier %q is not an IP address", s)
		}
		return identifier{idIP, a.Unmap().String()}, nil
	case idURI:
		return identifier{idURI, value}, nil
	case idEmail:
		e, err := normalizeEmail(value)
		return identifier{idEmail, e}, err
	case idCN:
		return identifier{idCN, value}, nil
	}
	return identifier{}, fmt.Errorf("identifier %q has unknown kind %q (want dns, ip, uri, email or cn)", s, kind)
}

// normalizeDNS lower-cases a DNS name and checks its syntax. A leading "*."
// label (a wildcard) is allowed.
func normalizeDNS(name string) (string, error) {
	n := strings.ToLower(name)
	if strings.HasPrefix(n, "*.") {
		if err := checkDNSName(n[2:]); err != nil {
			return "", err
		}
		return n, nil
	}
	return n, checkDNSName(n)
}

// checkDNSName checks a lower-case DNS name: letters, digits and hyphens
// (RFC 1123), labels of 1-63 octets, at most 253 octets, no trailing dot,
// not an IP address, and valid punycode in "xn--" labels (RFC 5891).
func checkDNSName(n string) error {
	switch {
	case n == "":
		return errors.New("empty DNS name")
	case len(n) > 253:
		return errors.New("DNS name longer than 253 characters")
	case strings.HasSuffix(n, "."):
		return errors.New("DNS name ends with a dot")
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return errors.New("an IP address is not a DNS name; request it as an IP address")
	}
	idn := false
	for label := range strings.SplitSeq(n, ".") {
		if label == "" {
			return errors.New("DNS name has an empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("DNS label %q is longer than 63 characters", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("DNS label %q starts or ends with a hyphen", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				if r == '*' {
					return errors.New("a wildcard is only allowed as the whole leftmost label")
				}
				return fmt.Errorf("DNS label %q has character %q (only letters, digits and hyphens are allowed)", label, r)
			}
		}
		if len(label) >= 4 && label[2:4] == "--" {
			if !strings.HasPrefix(label, "xn--") {
				return fmt.Errorf("DNS label %q has hyphens in the third and fourth positions", label)
			}
			idn = true
		}
	}
	if idn {
		if _, err := idna.Lookup.ToUnicode(n); err != nil {
			return fmt.Errorf("invalid internationalized name: %v", err)
		}
	}
	return nil
}

// normalizeEmail lower-cases the domain of an address and checks its form.
// The local part keeps its case (RFC 5321 leaves it to the mailbox owner).
func normalizeEmail(s string) (string, error) {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || strings.Contains(domain, "@") {
		return "", fmt.Errorf("e-mail address %q is not of the form local@domain", s)
	}
	for _, r := range local {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),:;<>[\]`, r) {
			return "", fmt.Errorf("e-mail address %q has character %q in its local part", s, r)
		}
	}
	domain = strings.ToLower(domain)
	if err := checkDNSName(domain); err != nil {
		return "", fmt.Errorf("e-mail address %q: %v", s, err)
	}
	return local + "@" + domain, nil
}

// checkURI accepts absolute URIs of printable ASCII (SANs are IA5String).
func checkURI(u *url.URL) (string, error) {
	s := u.String()
	if !u.IsAbs() {
		return "", fmt.Errorf("URI %q is not absolute (it has no scheme)", s)
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f {
			return "", fmt.Errorf("URI %q has a character outside printable ASCII", s)
		}
	}
	return s, nil
}

// allowDNS reports whether the profile allows name (which may be a
// wildcard: "*.a.test" is allowed by "*", by "*.a.test" and by "*.test").
func (p *policy) allowDNS(name string) bool {
	wild := strings.HasPrefix(name, "*.")
	for _, pat := range p.dns {
		switch {
		case pat == "*":
			return true
		case strings.HasPrefix(pat, "*."):
			suffix := pat[1:] // ".a.test"
			base := name
			if wild {
				base = name[2:]
				if base == pat[2:] {
					return true
				}
			}
			if strings.HasSuffix(base, suffix) {
				return true
			}
		case pat == name:
			return true
		}
	}
	return false
}

func (p *policy) allowIP(a netip.Addr) bool {
	if p.ipAny {
		return true
	}
	return slices.ContainsFunc(p.ipRanges, func(r netip.Prefix) bool { return r.Contains(a) })
}

func (p *policy) allowURI(u string) bool {
	return slices.ContainsFunc(p.URIs, func(pat string) bool { return glob(pat, u) })
}

func (p *policy) allowEmail(e string) bool {
	for _, pat := range p.Emails {
		switch {
		case pat == "*":
			return true
		case strings.HasPrefix(pat, "*@"):
			_, domain, _ := strings.Cut(e, "@")
			if strings.EqualFold(domain, pat[2:]) {
				return true
			}
		case strings.EqualFold(pat, e):
			return true
		}
	}
	return false
}

func (p *policy) allowCN(cn string) bool {
	return slices.ContainsFunc(p.CommonNames, func(pat string) bool {
		return glob(strings.ToLower(pat), strings.ToLower(cn))
	})
}

func (p *policy) allowIdentifier(id identifier) bool {
	switch id.kind {
	case idDNS:
		return p.allowDNS(id.value)
	case idIP:
		a, err := netip.ParseAddr(id.value)
		return err == nil && p.allowIP(a)
	case idURI:
		return p.allowURI(id.value)
	case idEmail:
		return p.allowEmail(id.value)
	}
	return false
}

// glob matches s against pattern, where "*" matches any run of characters
// (including none and including "/") and every other character itself.
func glob(pattern, s string) bool {
	// Iterative matcher with one backtrack point: linear in practice and
	// never exponential, whatever a profile or requester writes.
	px, sx := 0, 0
	star, mark := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pattern) && pattern[px] == '*':
			star, mark = px, sx
			px++
		case px < len(pattern) && pattern[px] == s[sx]:
			px++
			sx++
		case star >= 0:
			mark++
			px, sx = star+1, mark
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}
