package inventory

import (
	"fmt"
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
