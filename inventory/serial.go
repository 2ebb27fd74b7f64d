package inventory

import (
	"fmt"
	"math/big"
	"strings"
)

// maxSerialHex bounds a normalised serial. RFC 5280 allows 20 octets (40
// hex digits); discovered certificates are sometimes longer, so allow some
// slack but refuse absurd input before it reaches an index.
const maxSerialHex = 128

// NormalizeSerial returns the canonical spelling of a certificate serial:
// lower-case hex, no separators, no leading zeros ("0" for zero). It
// accepts what people paste: any case, colons or whitespace between digit
// groups ("00:AB:cd", "ab cd"), and an optional 0x prefix. Anything else
// (empty input, a non-hex digit, more than 128 digits) is an error
// wrapping ErrInvalid.
//
// Every method taking a serial normalises it with this function, so
// callers may pass serials as typed.
func NormalizeSerial(s string) (string, error) {
	h, ok := stripHex(s)
	if !ok {
		return "", fmt.Errorf("%w: serial %q is not hexadecimal", ErrInvalid, truncateForError(s))
	}
	h = strings.TrimLeft(h, "0")
	if h == "" {
		h = "0"
	}
	if len(h) > maxSerialHex {
		return "", fmt.Errorf("%w: serial has %d hex digits (at most %d)", ErrInvalid, len(h), maxSerialHex)
	}
	return h, nil
}

// normalizeDigest canonicalises a hex SHA-256 digest (fingerprint, public
// key hash): lower case, no separators, exactly 64 digits.
func normalizeDigest(field, s string) (string, error) {
	h, ok := stripHex(s)
	if !ok || len(h) != 64 {
		return "", fmt.Errorf("%w: %s must be 64 hex digits (SHA-256)", ErrInvalid, field)
	}
	return h, nil
}

// normalizeHexField canonicalises an optional hex field of any length (an
// issuer's SKI): "" stays "".
func normalizeHexField(field, s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	h, ok := stripHex(s)
	if !ok {
		return "", fmt.Errorf("%w: %s must be hexadecimal", ErrInvalid, field)
	}
	return h, nil
}

// stripHex removes an optional 0x prefix and separators (colons, spaces,
// tabs) and lower-cases the rest. ok is false unless at least one digit
// remains and every remaining character is a hex digit.
func stripHex(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ':' || c == ' ' || c == '\t':
			continue
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			b.WriteByte(c)
		case c >= 'A' && c <= 'F':
			b.WriteByte(c + ('a' - 'A'))
		default:
			return "", false
		}
	}
	if b.Len() == 0 {
		return "", false
	}
	return b.String(), true
}

// truncateForError keeps error messages bounded when input is hostile.
func truncateForError(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// FormatSerial is the one printed form of a serial, used by the admin API,
// the web UI, the CLI, audit views and logs alike: upper-case hex in whole
// octets with no separators, which is what `openssl x509 -noout -serial`
// prints ("0A1B" for the stored "a1b", "00" for zero), so an operator can
// compare MICA's output with openssl's by eye or by grep.
//
// s is normally a stored serial ([NormalizeSerial] form); any spelling
// NormalizeSerial accepts gives the same result. Text that is not a serial
// at all is returned bounded and otherwise unchanged, so a log line about
// bad input still shows what was sent.
func FormatSerial(s string) string {
	h, err := NormalizeSerial(s)
	if err != nil {
		return truncateForError(s)
	}
	if len(h)%2 == 1 {
		h = "0" + h
	}
	return strings.ToUpper(h)
}

// FormatSerialNumber prints a certificate's SerialNumber as
// [FormatSerial] does. A negative serial (RFC 5280 forbids them, but
// discovered certificates may carry one) gets openssl's leading minus.
func FormatSerialNumber(n *big.Int) string {
	if n == nil {
		return ""
	}
	if n.Sign() < 0 {
		return "-" + FormatSerial(new(big.Int).Neg(n).Text(16))
	}
	return FormatSerial(n.Text(16))
}

// FormatObject prints an audit event object for people: the serial of
// "cert:{issuer}/{serial}" in [FormatSerial] form, anything else as
// stored. The stored object keeps the canonical serial, so the hash chain
// and equality lookups never depend on how a serial is displayed.
func FormatObject(object string) string {
	issuer, serial, ok := splitCertObject(object)
	if !ok {
		return object
	}
	return "cert:" + issuer + "/" + FormatSerial(serial)
}

// ObjectKey is the stored form of an audit object a person typed: the
// serial of "cert:{issuer}/{serial}" in any spelling becomes the canonical
// one, so filtering events by the object the UI printed finds them.
// Anything else is returned as given.
func ObjectKey(object string) string {
	issuer, serial, ok := splitCertObject(object)
	if !ok {
		return object
	}
	n, err := NormalizeSerial(serial)
	if err != nil {
		return object
	}
	return "cert:" + issuer + "/" + n
}

// splitCertObject splits "cert:{issuer}/{serial}". The serial is what
// follows the last slash, so an issuer ID containing one still splits.
func splitCertObject(object string) (issuer, serial string, ok bool) {
	rest, ok := strings.CutPrefix(object, "cert:")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}
