package revocation

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// reqSpec describes a hand-built OCSPRequest, so hostile variations can be
// made one field at a time from a valid baseline.
type reqSpec struct {
	hashOID       asn1.ObjectIdentifier
	hashLen       int
	noParams      bool
	serial        *big.Int
	count         int
	version       int64 // -1: absent
	nonces        [][]byte
	critExt       bool
	otherExt      bool // a non-critical extension we do not know
	singleCritExt bool
	signature     bool
}

func baseSpec() reqSpec {
	return reqSpec{hashOID: oidSHA1, hashLen: 20, serial: big.NewInt(0x1234), count: 1, version: -1}
}

func (s reqSpec) build() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // TBSRequest
			if s.version >= 0 {
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(s.version) })
			}
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for range s.count {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1ObjectIdentifier(s.hashOID)
								if !s.noParams {
									b.AddASN1NULL()
								}
							})
							b.AddASN1OctetString(bytes.Repeat([]byte{1}, s.hashLen))
							b.AddASN1OctetString(bytes.Repeat([]byte{2}, s.hashLen))
							b.AddASN1BigInt(s.serial)
						})
						if s.singleCritExt {
							b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
								b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
									addExtension(b, asn1.ObjectIdentifier{1, 2, 3}, true, func(*cryptobyte.Builder) {})
								})
							})
						}
					})
				}
			})
			if len(s.nonces) > 0 || s.critExt || s.otherExt {
				b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						for _, n := range s.nonces {
							addExtension(b, oidNonce, false, func(b *cryptobyte.Builder) { b.AddBytes(n) })
						}
						if s.critExt {
							addExtension(b, asn1.ObjectIdentifier{1, 2, 3, 4}, true, func(*cryptobyte.Builder) {})
						}
						if s.otherExt {
							addExtension(b, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 4}, false, func(*cryptobyte.Builder) {})
						}
					})
				})
			}
		})
		if s.signature {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddBytes(algECDSAWithSHA256.algID)
					b.AddASN1BitString([]byte{1, 2, 3})
				})
			})
		}
	})
	return b.BytesOrPanic()
}

func octets(n int) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1OctetString(bytes.Repeat([]byte{0x5a}, n))
	return b.BytesOrPanic()
}

func TestParseRequestHostile(t *testing.T) {
	valid := baseSpec().build()
	with := func(f func(*reqSpec)) []byte { s := baseSpec(); f(&s); return s.build() }
	bad := map[string]struct {
		der  []byte
		kind error
	}{
		"empty":                {nil, ErrMalformedRequest},
		"trailing garbage":     {append(append([]byte{}, valid...), 0x00), ErrMalformedRequest},
		"not a sequence":       {[]byte{0x04, 0x00}, ErrMalformedRequest},
		"BER indefinite":       {append([]byte{0x30, 0x80}, append(valid[2:], 0, 0)...), ErrMalformedRequest},
		"too large":            {make([]byte, MaxRequestSize+1), ErrRequestTooLarge},
		"empty nonce":          {with(func(s *reqSpec) { s.nonces = [][]byte{octets(0)} }), ErrNonceLength},
		"129-octet nonce":      {with(func(s *reqSpec) { s.nonces = [][]byte{octets(129)} }), ErrNonceLength},
		"giant raw nonce":      {with(func(s *reqSpec) { s.nonces = [][]byte{bytes.Repeat([]byte{7}, 4000)} }), ErrNonceLength},
		"empty raw nonce":      {with(func(s *reqSpec) { s.nonces = [][]byte{{}} }), ErrNonceLength},
		"two nonces":           {with(func(s *reqSpec) { s.nonces = [][]byte{octets(16), octets(16)} }), ErrMalformedRequest},
		"MD5 CertID":           {with(func(s *reqSpec) { s.hashOID, s.hashLen = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}, 16 }), ErrUnsupportedHash},
		"hash length mismatch": {with(func(s *reqSpec) { s.hashLen = 32 }), ErrMalformedRequest},
		"version 2":            {with(func(s *reqSpec) { s.version = 1 }), ErrMalformedRequest},
		"no requests":          {with(func(s *reqSpec) { s.count = 0 }), ErrMalformedRequest},
		"critical extension":   {with(func(s *reqSpec) { s.critExt = true }), ErrUnsupportedCritical},
		"critical single ext":  {with(func(s *reqSpec) { s.singleCritExt = true }), ErrUnsupportedCritical},
	}
	for i := 1; i < len(valid); i++ {
		bad["truncated"+string(rune('a'+i%26))+string(rune('0'+i/26))] = struct {
			der  []byte
			kind error
		}{valid[:i], ErrMalformedRequest}
	}
	for name, c := range bad {
		req, err := ParseRequest(c.der)
		var re *RequestError
		if req != nil || !errors.As(err, &re) || !errors.Is(err, ErrMalformedRequest) || !errors.Is(err, c.kind) {
			t.Errorf("%s: got %+v, %v; want %v", name, req, err, c.kind)
		}
	}

	good := map[string][]byte{
		"baseline":            valid,
		"explicit v1":         with(func(s *reqSpec) { s.version = 0 }),
		"absent params":       with(func(s *reqSpec) { s.noParams = true }),
		"1-octet nonce":       with(func(s *reqSpec) { s.nonces = [][]byte{octets(1)} }),
		"128-octet nonce":     with(func(s *reqSpec) { s.nonces = [][]byte{octets(128)} }),
		"raw legacy nonce":    with(func(s *reqSpec) { s.nonces = [][]byte{bytes.Repeat([]byte{9}, 20)} }),
		"signed request":      with(func(s *reqSpec) { s.signature = true }),
		"three requests":      with(func(s *reqSpec) { s.count = 3 }),
		"SHA-512 CertID":      with(func(s *reqSpec) { s.hashOID, s.hashLen = oidSHA512, 64 }),
		"negative serial":     with(func(s *reqSpec) { s.serial = big.NewInt(-5) }),
		"unknown noncrit ext": with(func(s *reqSpec) { s.otherExt, s.nonces = true, [][]byte{octets(32)} }),
	}
	for name, der := range good {
		req, err := ParseRequest(der)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if req.Serial == nil || req.Requests < 1 || len(req.IssuerKeyHash) != req.HashAlgorithm.Size() {
			t.Errorf("%s: %+v", name, req)
		}
	}
	if req, _ := ParseRequest(with(func(s *reqSpec) { s.count = 3 })); req.Requests != 3 {
		t.Errorf("Requests = %d", req.Requests)
	}
	raw := bytes.Repeat([]byte{9}, 20)
	if req, _ := ParseRequest(with(func(s *reqSpec) { s.nonces = [][]byte{raw} })); !bytes.Equal(req.Nonce, raw) {
		t.Error("legacy raw nonce not kept verbatim for the echo")
	}
	if req, _ := ParseRequest(with(func(s *reqSpec) { s.hashOID, s.hashLen = oidSHA384, 48 })); req.HashAlgorithm != crypto.SHA384 {
		t.Error("SHA-384 CertID")
	}
}

// FuzzParseRequest must never panic, and everything it accepts must be
// internally consistent. Plain `go test` runs the seeds only; run
// `go test -fuzz FuzzParseRequest ./ca/revocation/` to explore.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []reqSpec{
		baseSpec(),
		{hashOID: oidSHA256, hashLen: 32, serial: big.NewInt(1 << 62), count: 2, version: 0, nonces: [][]byte{octets(32)}, signature: true},
		{hashOID: oidSHA1, hashLen: 20, serial: big.NewInt(1), count: 1, version: -1, nonces: [][]byte{octets(129)}},
		{hashOID: oidSHA512, hashLen: 64, serial: big.NewInt(-1), count: 1, version: -1, critExt: true, singleCritExt: true},
	} {
		der := s.build()
		f.Add(der)
		f.Add(der[:len(der)/2])
		f.Add(append(der, 0))
	}
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseRequest(data)
		if err != nil {
			var re *RequestError
			if req != nil || !errors.As(err, &re) || !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("untyped or inconsistent error %v (%+v)", err, req)
			}
			return
		}
		if req.Serial == nil || req.Requests < 1 || !hashSupported(req.HashAlgorithm) ||
			len(req.IssuerNameHash) != req.HashAlgorithm.Size() || len(req.IssuerKeyHash) != req.HashAlgorithm.Size() {
			t.Fatalf("inconsistent request %+v", req)
		}
		if req.Nonce != nil && checkNonce(req.Nonce) != nil {
			t.Fatalf("accepted nonce %x", req.Nonce)
		}
	})
}
