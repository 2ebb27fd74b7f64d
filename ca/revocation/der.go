package revocation

import (
	"errors"
	"math/big"
	"slices"
	"time"
)

// Hand-rolled DER for the CRL hot path. The CRL encoder writes millions of
// tiny, fixed-shape entries; cryptobyte.Builder or encoding/asn1 would
// allocate per entry, which is exactly the memory profile this package
// exists to avoid. Everything not on the per-entry path uses cryptobyte.

const (
	tagBoolean         = 0x01
	tagInteger         = 0x02
	tagBitString       = 0x03
	tagOctetString     = 0x04
	tagOID             = 0x06
	tagEnumerated      = 0x0a
	tagUTCTime         = 0x17
	tagGeneralizedTime = 0x18
	tagSequence        = 0x30
)

// appendLength appends a DER definite length (short form below 128, else
// the minimal long form).
func appendLength(b []byte, n int) []byte {
	if n < 0x80 {
		return append(b, byte(n))
	}
	var tmp [8]byte
	i := len(tmp)
	for v := uint64(n); v > 0; v >>= 8 {
		i--
		tmp[i] = byte(v)
	}
	b = append(b, 0x80|byte(len(tmp)-i))
	return append(b, tmp[i:]...)
}

// appendHeader appends a single-byte tag and the length of n content octets.
func appendHeader(b []byte, tag byte, n int) []byte {
	return appendLength(append(b, tag), n)
}

// uintContentLen is the content length of the minimal DER INTEGER encoding
// of a non-negative n: BitLen/8+1 leaves room for the 0x00 pad byte that a
// set top bit needs, and gives 1 for zero.
func uintContentLen(n *big.Int) int {
	return n.BitLen()/8 + 1
}

// appendUint appends a DER INTEGER for a non-negative n without allocating
// (big.Int.Bytes would allocate once per CRL entry).
func appendUint(b []byte, n *big.Int) []byte {
	l := uintContentLen(n)
	b = appendHeader(b, tagInteger, l)
	b = slices.Grow(b, l)
	b = b[:len(b)+l]
	n.FillBytes(b[len(b)-l:]) // right-aligned, zero-padded: the pad byte comes free
	return b
}

var errTimeRange = errors.New("time outside years 0000-9999")

// validTime reports whether t can be written as a GeneralizedTime.
func validTime(t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return errTimeRange
	}
	return nil
}

// appendTime writes t as RFC 5280 §4.1.2.5 / §5.1.2.4 require for CRL and
// certificate times: UTCTime for 1950-2049, GeneralizedTime otherwise, in UTC,
// whole seconds, no fraction.
func appendTime(b []byte, t time.Time) []byte {
	y, mo, d := t.UTC().Date() // one calendar split, not one per field
	if y >= 1950 && y < 2050 {
		b = append(b, tagUTCTime, 13)
		b = append2(b, y%100)
		return appendClock(b, t, mo, d)
	}
	b = append(b, tagGeneralizedTime, 15)
	b = append2(b, y/100)
	b = append2(b, y%100)
	return appendClock(b, t, mo, d)
}

// appendGeneralizedTime writes t as GeneralizedTime regardless of year, as
// the invalidityDate entry extension (RFC 5280 §5.3.2) demands.
func appendGeneralizedTime(b []byte, t time.Time) []byte {
	y, mo, d := t.UTC().Date()
	b = append(b, tagGeneralizedTime, 15)
	b = append2(b, y/100)
	b = append2(b, y%100)
	return appendClock(b, t, mo, d)
}

func appendClock(b []byte, t time.Time, mo time.Month, d int) []byte {
	h, mi, s := t.UTC().Clock()
	b = append2(b, int(mo))
	b = append2(b, d)
	b = append2(b, h)
	b = append2(b, mi)
	b = append2(b, s)
	return append(b, 'Z')
}

func append2(b []byte, v int) []byte {
	return append(b, byte('0'+v/10), byte('0'+v%10))
}
