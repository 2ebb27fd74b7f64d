package ca

import "time"

// Profile is a named issuance policy. Identifier patterns:
//
//   - DNS: "*" any name; "example.com" exactly; "*.example.com" any name
//     strictly below example.com, at any depth.
//   - IPRanges: CIDRs ("10.0.0.0/8", "::1/128"); "*" any address.
//   - URIs: "*" any; otherwise a glob where "*" matches any run of characters
//     (e.g. "spiffe://example.org/*").
//   - Emails: "*" any; "*@example.com" any mailbox at that domain; exact otherwise.
//
// A request whose names are not all allowed is refused with ErrPolicy.
type Profile struct {
	Name        string   `yaml:"-" json:"name"`
	Description string   `yaml:"description,omitempty" json:"description,omitempty"`
	DNS         []string `yaml:"dns,omitempty" json:"dns,omitempty"`
	IPRanges    []string `yaml:"ip_ranges,omitempty" json:"ip_ranges,omitempty"`
	URIs        []string `yaml:"uris,omitempty" json:"uris,omitempty"`
	Emails      []string `yaml:"emails,omitempty" json:"emails,omitempty"`
	// CommonNames are patterns (DNS-pattern syntax) a subject CN that is not
	// also a SAN may match, for devices that identify by CN only ("dev-*").
	CommonNames []string `yaml:"common_names,omitempty" json:"common_names,omitempty"`
	// KeyTypes allowed for the subject key, hsm.KeyType names (EC-P256,
	// EC-P384, RSA-2048, RSA-3072, RSA-4096, Ed25519). Empty means EC-P256,
	// EC-P384, RSA-2048, RSA-3072, RSA-4096.
	KeyTypes        []string      `yaml:"key_types,omitempty" json:"key_types,omitempty"`
	MaxLifetime     time.Duration `yaml:"max_lifetime" json:"max_lifetime"`
	DefaultLifetime time.Duration `yaml:"default_lifetime" json:"default_lifetime"`
	Backdate        time.Duration `yaml:"backdate,omitempty" json:"backdate,omitempty"` // clock-skew allowance, default 1m
	// KeyUsage names: digitalSignature, keyEncipherment, keyAgreement, …
	// Empty means digitalSignature (+ keyEncipherment for RSA subject keys).
	KeyUsage []string `yaml:"key_usage,omitempty" json:"key_usage,omitempty"`
	// ExtKeyUsage names: serverAuth, clientAuth, codeSigning, emailProtection.
	ExtKeyUsage []string `yaml:"ext_key_usage" json:"ext_key_usage"`
}
