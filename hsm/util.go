package hsm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
)

// maxKeyNameLen keeps names usable as file names and PKCS#11 labels on
// tokens that cap CKA_LABEL length.
const maxKeyNameLen = 64

// ValidKeyName reports whether name may name a key in every backend: 1–64
// characters from [A-Za-z0-9._-], not starting with '.' or '-', and never
// containing "..". The rule is the same for both backends so a key can move
// between them (e.g. a lab softkms setup promoted to an HSM) under its name,
// and a softkms name can never escape its directory.
func ValidKeyName(name string) error {
	switch {
	case name == "":
		return errors.New("hsm: key name is empty")
	case len(name) > maxKeyNameLen:
		return fmt.Errorf("hsm: key name is longer than %d characters", maxKeyNameLen)
	case name[0] == '.' || name[0] == '-':
		return fmt.Errorf("hsm: key name %q must not start with '.' or '-'", name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("hsm: key name %q must not contain \"..\"", name)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("hsm: key name %q has a character outside [A-Za-z0-9._-]", name)
		}
	}
	return nil
}

// KeyTypeOf returns the KeyType of a public key, or an error wrapping
// ErrUnsupported for keys MICA does not issue with (e.g. P-521, RSA-1024).
func KeyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECP256, nil
		case elliptic.P384():
			return ECP384, nil
		}
		if k.Curve != nil {
			return "", fmt.Errorf("%w: EC curve %s", ErrUnsupported, k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048, nil
		case 3072:
			return RSA3072, nil
		case 4096:
			return RSA4096, nil
		}
		return "", fmt.Errorf("%w: RSA key of %d bits", ErrUnsupported, k.N.BitLen())
	case ed25519.PublicKey:
		return Ed25519, nil
	}
	return "", fmt.Errorf("%w: public key type %T", ErrUnsupported, pub)
}

// pinValueRE finds PIN values that a user may have pasted into a URI, so
// that no error message ever repeats them.
var pinValueRE = regexp.MustCompile(`(?i)(pin-value=)[^;&?]*`)

// redactURI returns raw with any pin-value replaced, for error messages.
func redactURI(raw string) string { return pinValueRE.ReplaceAllString(raw, "${1}[REDACTED]") }

// uriAttrs are the attributes of an RFC 7512-style URI ("scheme:a=1;b=2?c=3").
type uriAttrs map[string]string

// parseURI splits raw into attributes. Path attributes are separated by ';',
// query attributes by '&' or ';'. Values are percent-decoded with
// PathUnescape, so '+' stays '+' (file paths may contain it). Repeated
// attributes are an error rather than a silent first-or-last-wins. Errors
// name attributes, never values, because the value might be a PIN.
func parseURI(scheme, raw string) (uriAttrs, error) {
	s, rest, ok := strings.Cut(raw, ":")
	if !ok || !strings.EqualFold(s, scheme) {
		return nil, fmt.Errorf("hsm: URI %q does not start with scheme %s", redactURI(raw), scheme)
	}
	path, query, _ := strings.Cut(rest, "?")
	attrs := uriAttrs{}
	add := func(part string) error {
		if part == "" {
			return nil
		}
		k, v, _ := strings.Cut(part, "=")
		if k == "" {
			return fmt.Errorf("hsm: %s URI has an attribute without a name", scheme)
		}
		dv, err := url.PathUnescape(v)
		if err != nil {
			return fmt.Errorf("hsm: %s URI attribute %s is not properly percent-encoded", scheme, k)
		}
		if _, dup := attrs[k]; dup {
			return fmt.Errorf("hsm: %s URI repeats attribute %s", scheme, k)
		}
		attrs[k] = dv
		return nil
	}
	for _, p := range strings.Split(path, ";") {
		if err := add(p); err != nil {
			return nil, err
		}
	}
	for _, p := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
		if err := add(p); err != nil {
			return nil, err
		}
	}
	return attrs, nil
}

// only fails if attrs has an attribute outside allowed. Unknown attributes
// are refused so that a typo ("label=" for "token=") cannot silently select
// a default.
func (a uriAttrs) only(what string, allowed ...string) error {
	for k := range a {
		found := false
		for _, w := range allowed {
			found = found || k == w
		}
		if !found {
			return fmt.Errorf("hsm: %s has unknown attribute %q (allowed: %s)", what, k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// EscapeURIValue percent-encodes everything but RFC 3986 unreserved
// characters and '/', so a value can never be mistaken for a separator in a
// softkms: or pkcs11: URI. config uses it when it rewrites key URIs.
func EscapeURIValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// keySigner is the only crypto.Signer this package hands out. It hides the
// concrete key (so callers cannot reach *ecdsa.PrivateKey or crypto11's
// Delete), refuses to work after its Backend is closed, and checks arguments
// that would otherwise panic (nil opts on RSA and Ed25519) or be signed
// without complaint by an HSM (a digest of the wrong length with CKM_ECDSA).
type keySigner struct {
	pub    crypto.PublicKey
	inner  crypto.Signer
	closed *atomic.Bool
}

func (s *keySigner) Public() crypto.PublicKey { return s.pub }

func (s *keySigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if opts == nil {
		return nil, errors.New("hsm: Sign needs crypto.SignerOpts (e.g. crypto.SHA256), got nil")
	}
	if h := opts.HashFunc(); h != 0 {
		if !h.Available() {
			return nil, fmt.Errorf("%w: hash %v", ErrUnsupported, h)
		}
		if len(digest) != h.Size() {
			return nil, fmt.Errorf("hsm: digest is %d bytes, %v needs %d", len(digest), h, h.Size())
		}
	}
	if rand == nil { // RSA-PSS in software needs randomness; HSMs ignore it
		rand = cryptorand.Reader
	}
	return s.inner.Sign(rand, digest, opts)
}

// SoftKMSURI returns the backend URI for a softkms key directory, escaping
// characters that would otherwise split the URI.
func SoftKMSURI(dir string) string { return "softkms:dir=" + EscapeURIValue(dir) }

// PKCS11URI returns the backend URI for the token labelled token in module.
func PKCS11URI(module, token string) string {
	return "pkcs11:module-path=" + EscapeURIValue(module) + ";token=" + EscapeURIValue(token)
}
