package ca

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mica-pki/mica/internal/humantime"
)

const day = 24 * time.Hour

// DefaultProfiles returns the profiles MICA uses when the configuration names
// none. Each call returns a fresh map the caller may change.
//
//   - server: TLS servers; any DNS name or IP address; 90 days, at most 397
//     (the CA/Browser Forum cap, which clients such as Apple's enforce even
//     for private roots).
//   - client: TLS clients; DNS names, e-mail addresses and URIs (SPIFFE
//     IDs); 90 days, at most 397.
//   - device: device identities, which often name themselves by CN only
//     ("dev1"); URIs, DNS names or any CN; one year, at most two.
func DefaultProfiles() map[string]Profile {
	return map[string]Profile{
		"server": {
			Name:            "server",
			Description:     "TLS server certificates",
			DNS:             []string{"*"},
			IPRanges:        []string{"*"},
			ExtKeyUsage:     []string{"serverAuth"},
			DefaultLifetime: 90 * day,
			MaxLifetime:     397 * day,
		},
		"client": {
			Name:            "client",
			Description:     "TLS client certificates",
			DNS:             []string{"*"},
			Emails:          []string{"*"},
			URIs:            []string{"*"},
			ExtKeyUsage:     []string{"clientAuth"},
			DefaultLifetime: 90 * day,
			MaxLifetime:     397 * day,
		},
		"device": {
			Name:            "device",
			Description:     "device identities (CN-only names allowed)",
			DNS:             []string{"*"},
			URIs:            []string{"*"},
			CommonNames:     []string{"*"},
			ExtKeyUsage:     []string{"clientAuth"},
			DefaultLifetime: 365 * day,
			MaxLifetime:     730 * day,
		},
	}
}

// Subject key type names a profile may list. They are hsm.KeyType names plus
// EC-P521, which MICA accepts from subjects but does not create.
var knownKeyTypes = []string{"EC-P256", "EC-P384", "EC-P521", "RSA-2048", "RSA-3072", "RSA-4096", "Ed25519"}

// defaultKeyTypes apply when a profile lists none.
var defaultKeyTypes = []string{"EC-P256", "EC-P384", "RSA-2048", "RSA-3072", "RSA-4096"}

var keyUsageNames = map[string]x509.KeyUsage{
	"digitalSignature":  x509.KeyUsageDigitalSignature,
	"contentCommitment": x509.KeyUsageContentCommitment,
	"nonRepudiation":    x509.KeyUsageContentCommitment,
	"keyEncipherment":   x509.KeyUsageKeyEncipherment,
	"dataEncipherment":  x509.KeyUsageDataEncipherment,
	"keyAgreement":      x509.KeyUsageKeyAgreement,
}

var extKeyUsageNames = map[string]x509.ExtKeyUsage{
	"serverAuth":      x509.ExtKeyUsageServerAuth,
	"clientAuth":      x509.ExtKeyUsageClientAuth,
	"codeSigning":     x509.ExtKeyUsageCodeSigning,
	"emailProtection": x509.ExtKeyUsageEmailProtection,
	"timeStamping":    x509.ExtKeyUsageTimeStamping,
}

// profileNameRE: profile names appear in URLs (/acme/{profile}/directory).
var profileNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// policy is a validated, compiled Profile.
type policy struct {
	Profile
	dns      []string // "*", "*.suffix" or exact, lower case
	ipAny    bool
	ipRanges []netip.Prefix
	keyTypes []string // canonical names
	ku       x509.KeyUsage
	kuNames  []string
	eku      []x509.ExtKeyUsage
}

// compileProfiles validates every profile; an empty map means the defaults.
func compileProfiles(in map[string]Profile) (map[string]*policy, error) {
	if len(in) == 0 {
		in = DefaultProfiles()
	}
	out := make(map[string]*policy, len(in))
	for name, p := range in {
		pol, err := compileProfile(name, p)
		if err != nil {
			return nil, err
		}
		out[name] = pol
	}
	return out, nil
}

// compileProfile checks p and returns its compiled form, or an ErrConfig
// naming the profile and the field at fault.
func compileProfile(name string, p Profile) (*policy, error) {
	bad := func(field, format string, args ...any) error {
		return Errorf(ErrConfig, "profile %q: %s: %s", name, field, fmt.Sprintf(format, args...))
	}
	if !profileNameRE.MatchString(name) {
		return nil, bad("name", "must be 1-63 lower-case letters, digits, '.', '_' or '-'")
	}
	if p.Name != "" && p.Name != name {
		return nil, bad("name", "is %q but the profile is configured as %q", p.Name, name)
	}
	p.Name = name
	pol := &policy{Profile: p}

	for _, d := range p.DNS {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "*":
		case strings.HasPrefix(d, "*."):
			if err := checkDNSName(d[2:]); err != nil {
				return nil, bad("dns", "pattern %q: %v", d, err)
			}
		default:
			if err := checkDNSName(d); err != nil {
				return nil, bad("dns", "pattern %q: %v", d, err)
			}
		}
		pol.dns = append(pol.dns, d)
	}
	for _, r := range p.IPRanges {
		r = strings.TrimSpace(r)
		if r == "*" {
			pol.ipAny = true
			continue
		}
		pfx, err := netip.ParsePrefix(r)
		if err != nil {
			addr, aerr := netip.ParseAddr(r)
			if aerr != nil {
				return nil, bad("ip_ranges", "%q is not a CIDR such as 10.0.0.0/8 or fd00::/8", r)
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		pol.ipRanges = append(pol.ipRanges, pfx.Masked())
	}
	for _, u := range p.URIs {
		if strings.TrimSpace(u) == "" {
			return nil, bad("uris", "empty pattern")
		}
	}
	for _, e := range p.Emails {
		if e != "*" && !strings.Contains(e, "@") {
			return nil, bad("emails", "pattern %q is neither \"*\", \"*@domain\" nor an address", e)
		}
	}
	for _, cn := range p.CommonNames {
		if strings.TrimSpace(cn) == "" {
			return nil, bad("common_names", "empty pattern")
		}
	}
	if len(p.DNS)+len(p.IPRanges)+len(p.URIs)+len(p.Emails)+len(p.CommonNames) == 0 {
		return nil, bad("dns/ip_ranges/uris/emails/common_names", "the profile allows no names at all")
	}

	kts := p.KeyTypes
	if len(kts) == 0 {
		kts = defaultKeyTypes
	}
	for _, kt := range kts {
		canon, ok := canonicalKeyType(kt)
		if !ok {
			return nil, bad("key_types", "unknown key type %q (known: %s)", kt, strings.Join(knownKeyTypes, ", "))
		}
		if !slices.Contains(pol.keyTypes, canon) {
			pol.keyTypes = append(pol.keyTypes, canon)
		}
	}

	for _, k := range p.KeyUsage {
		bit, ok := keyUsageNames[k]
		if !ok {
			if k == "certSign" || k == "keyCertSign" || k == "cRLSign" || k == "crlSign" {
				return nil, bad("key_usage", "%q is for CA certificates; profiles issue end-entity certificates", k)
			}
			return nil, bad("key_usage", "unknown key usage %q (known: %s)", k, strings.Join(sortedKeys(keyUsageNames), ", "))
		}
		pol.ku |= bit
		pol.kuNames = append(pol.kuNames, k)
	}
	if len(p.ExtKeyUsage) == 0 {
		return nil, bad("ext_key_usage", "is empty; name at least one of %s", strings.Join(sortedKeys(extKeyUsageNames), ", "))
	}
	for _, k := range p.ExtKeyUsage {
		eku, ok := extKeyUsageNames[k]
		if !ok {
			return nil, bad("ext_key_usage", "unknown extended key usage %q (known: %s)", k, strings.Join(sortedKeys(extKeyUsageNames), ", "))
		}
		pol.eku = append(pol.eku, eku)
	}

	switch {
	case p.MaxLifetime <= 0:
		return nil, bad("max_lifetime", "must be set and positive")
	case p.DefaultLifetime < 0:
		return nil, bad("default_lifetime", "is negative")
	case p.DefaultLifetime == 0:
		pol.DefaultLifetime = p.MaxLifetime
	case p.DefaultLifetime > p.MaxLifetime:
		return nil, bad("default_lifetime", "%s is longer than max_lifetime %s", fmtDuration(p.DefaultLifetime), fmtDuration(p.MaxLifetime))
	}
	switch {
	case p.Backdate < 0:
		return nil, bad("backdate", "is negative")
	case p.Backdate == 0:
		pol.Backdate = time.Minute
	case p.Backdate > day:
		return nil, bad("backdate", "%s is more than a day", fmtDuration(p.Backdate))
	}
	return pol, nil
}

// canonicalKeyType maps a profile key type name (any case, short forms as in
// hsm.ParseKeyType) to its canonical name.
func canonicalKeyType(s string) (string, bool) {
	n := strings.ToLower(strings.NewReplacer("-", "", "_", "", " ", "").Replace(s))
	switch n {
	case "ecp256", "p256", "ecdsap256", "ec256":
		return "EC-P256", true
	case "ecp384", "p384", "ecdsap384", "ec384":
		return "EC-P384", true
	case "ecp521", "p521", "ecdsap521", "ec521":
		return "EC-P521", true
	case "rsa2048":
		return "RSA-2048", true
	case "rsa3072":
		return "RSA-3072", true
	case "rsa4096":
		return "RSA-4096", true
	case "ed25519":
		return "Ed25519", true
	}
	return "", false
}

// keyUsageFor returns the key usage for a certificate with the given subject
// key. By default that is digitalSignature, plus keyEncipherment for RSA
// keys under a serverAuth or emailProtection EKU (RSA key transport in TLS
// 1.2 and S/MIME; RFC 5280 4.2.1.12 does not allow it with clientAuth
// alone). RFC 8813 and RFC 8410 forbid encipherment bits on EC and Ed25519
// keys and keyAgreement on RSA and Ed25519 keys, so configured bits a key
// cannot have are dropped instead of producing a certificate that fails
// lint.
func (p *policy) keyUsageFor(keyType string) x509.KeyUsage {
	isRSA := strings.HasPrefix(keyType, "RSA-")
	isEC := strings.HasPrefix(keyType, "EC-")
	if p.ku == 0 {
		if isRSA && (slices.Contains(p.eku, x509.ExtKeyUsageServerAuth) || slices.Contains(p.eku, x509.ExtKeyUsageEmailProtection)) {
			return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		}
		return x509.KeyUsageDigitalSignature
	}
	ku := p.ku
	if !isRSA {
		ku &^= x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment
	}
	if !isEC {
		ku &^= x509.KeyUsageKeyAgreement
	}
	if ku == 0 {
		ku = x509.KeyUsageDigitalSignature
	}
	return ku
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// fmtDuration is HumanDuration, for the policy's own messages.
func fmtDuration(d time.Duration) string { return HumanDuration(d) }

// HumanDuration prints a duration the way configuration is written:
// "10y", "90d", "1d12h", "1h30m", "30s" — never Go's "2160h0m0s".
// Whole years are 365 days, as in config.ParseDuration.
func HumanDuration(d time.Duration) string { return humantime.Format(d) }
