package revocation

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/ocsp"
)

// FuzzDecodeGETRequest drives what the GET /ocsp/{base64} handler runs on
// the raw path: DecodeGETRequest, then ParseRequest. Neither may panic,
// every refusal is a typed RequestError, and whatever decodes comes back
// unchanged through every spelling the decoder promises to accept
// (standard or URL-safe alphabet, padded or not, percent-encoded or not).
func FuzzDecodeGETRequest(f *testing.F) {
	for _, s := range []reqSpec{baseSpec(), {hashOID: oidSHA256, hashLen: 32, serial: big.NewInt(1 << 62), count: 1, version: -1, nonces: [][]byte{octets(32)}}} {
		der := s.build()
		f.Add(base64.StdEncoding.EncodeToString(der))
		f.Add(base64.RawURLEncoding.EncodeToString(der))
		f.Add(strings.ReplaceAll(base64.StdEncoding.EncodeToString(der), "/", "%2F"))
	}
	f.Add("")
	f.Add("%zz")
	f.Add("MA==")
	f.Add("a b-c_d==")
	f.Fuzz(func(t *testing.T, path string) {
		der, err := DecodeGETRequest(path)
		if err != nil {
			var re *RequestError
			if der != nil || !errors.As(err, &re) || !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("DecodeGETRequest(%q) = %x, %v: want a typed malformed error", path, der, err)
			}
			return
		}
		for _, enc := range []string{
			base64.StdEncoding.EncodeToString(der),
			base64.RawStdEncoding.EncodeToString(der),
			base64.URLEncoding.EncodeToString(der),
			strings.NewReplacer("/", "%2F", "+", "%2B", "=", "%3D").Replace(base64.StdEncoding.EncodeToString(der)),
		} {
			if len(enc) > 4*MaxRequestSize {
				break
			}
			again, err := DecodeGETRequest(enc)
			if err != nil || !bytes.Equal(again, der) {
				t.Fatalf("re-encoded %q decodes to %x, %v; want %x", enc, again, err, der)
			}
		}
		req, err := ParseRequest(der)
		if err != nil {
			var re *RequestError
			if req != nil || !errors.As(err, &re) {
				t.Fatalf("ParseRequest: untyped error %v", err)
			}
			return
		}
		if req.Serial == nil || req.Requests < 1 || !hashSupported(req.HashAlgorithm) {
			t.Fatalf("inconsistent request %+v", req)
		}
	})
}

// crlCase turns fuzz bytes into a CRL template and its entries: a flags
// octet, then per entry a serial length (1..21 octets), the serial, a
// reason octet, four octets of seconds after 1990 and an invalidity flag.
func crlCase(data []byte) (CRLTemplate, []Entry) {
	base := time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)
	s := cryptobyte.String(data)
	var flags uint8
	s.ReadUint8(&flags)
	tmpl := CRLTemplate{Number: big.NewInt(int64(flags) + 2), ThisUpdate: base.Add(time.Duration(flags) * 24 * time.Hour)}
	tmpl.NextUpdate = tmpl.ThisUpdate.Add(time.Duration(1+flags%5) * 100 * 365 * 24 * time.Hour) // some past 2050: GeneralizedTime
	if flags&1 != 0 {
		tmpl.IssuingDistributionPoint = "http://ca.test/crl/x-1.crl"
	}
	if flags&2 != 0 {
		tmpl.DeltaOf = big.NewInt(1)
	}
	if flags&4 != 0 {
		tmpl.FreshestCRL = "http://ca.test/crl/x-delta.crl"
	}
	if flags&8 != 0 {
		tmpl.SpoolMemory = 64 // force the temp-file spool
	}
	var entries []Entry
	for len(entries) < 64 {
		var n, reason, inval uint8
		var secs uint32
		var sn []byte
		if !s.ReadUint8(&n) || !s.ReadBytes(&sn, int(n%21)+1) || !s.ReadUint8(&reason) || !s.ReadUint32(&secs) || !s.ReadUint8(&inval) {
			break
		}
		e := Entry{Serial: new(big.Int).SetBytes(sn), RevokedAt: base.Add(time.Duration(secs) * time.Second), Reason: int(reason % 12)}
		if inval&1 != 0 {
			e.InvalidityDate = e.RevokedAt.Add(-time.Hour)
		}
		entries = append(entries, e)
	}
	return tmpl, entries
}

// FuzzWriteCRL round-trips what the streaming CRL encoder writes through
// crypto/x509's parser: every CRL it agrees to write must parse, verify
// under the issuer, and say exactly what it was given: number, times,
// serials, revocation dates, reasons, invalidity dates and the scope
// extensions, with Stats describing the bytes written.
func FuzzWriteCRL(f *testing.F) {
	ca := newTestCA(f, "p256")
	f.Add([]byte{0})
	f.Add([]byte{0x0f, 1, 0x01, 1, 0, 0, 0, 1, 0, 20, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0x02, 0, 0x00, 8, 0, 0, 1, 0, 0, 3, 1, 2, 3, 4, 6, 0, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{7, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 1, 0x7f, 0xff, 0, 0, 1}, 10))
	f.Fuzz(func(t *testing.T, data []byte) {
		tmpl, entries := crlCase(data)
		var out bytes.Buffer
		st, err := WriteCRL(&out, tmpl, ca.issuing, ca.issuingKey, SliceSource(entries))
		if err != nil {
			if out.Len() != 0 {
				t.Fatalf("WriteCRL failed (%v) but wrote %d bytes", err, out.Len())
			}
			return
		}
		der := out.Bytes()
		if st.Size != int64(len(der)) || st.Entries != int64(len(entries)) || st.SHA256 != sha256.Sum256(der) {
			t.Fatalf("Stats %+v do not describe the %d bytes and %d entries written", st, len(der), len(entries))
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatalf("x509.ParseRevocationList: %v", err)
		}
		if err := crl.CheckSignatureFrom(ca.issuing); err != nil {
			t.Fatalf("signature: %v", err)
		}
		if crl.Number.Cmp(tmpl.Number) != 0 || !crl.ThisUpdate.Equal(tmpl.ThisUpdate) || !crl.NextUpdate.Equal(tmpl.NextUpdate) {
			t.Fatalf("number/times %v %v %v, want %v %v %v", crl.Number, crl.ThisUpdate, crl.NextUpdate, tmpl.Number, tmpl.ThisUpdate, tmpl.NextUpdate)
		}
		want := map[string]bool{
			"2.5.29.28": tmpl.IssuingDistributionPoint != "", "2.5.29.27": tmpl.DeltaOf != nil, "2.5.29.46": tmpl.FreshestCRL != "",
		}
		for _, e := range crl.Extensions {
			delete(want, e.Id.String())
		}
		for oid, present := range want {
			if present {
				t.Fatalf("extension %s missing", oid)
			}
		}
		if len(crl.RevokedCertificateEntries) != len(entries) {
			t.Fatalf("%d entries parsed, %d written", len(crl.RevokedCertificateEntries), len(entries))
		}
		for i, got := range crl.RevokedCertificateEntries {
			e := entries[i]
			if got.SerialNumber.Cmp(e.Serial) != 0 || !got.RevocationTime.Equal(e.RevokedAt) || got.ReasonCode != e.Reason {
				t.Fatalf("entry %d = %x %v %d, want %x %v %d", i, got.SerialNumber, got.RevocationTime, got.ReasonCode, e.Serial, e.RevokedAt, e.Reason)
			}
			hasInval := false
			for _, x := range got.Extensions {
				if x.Id.Equal(oidInvalidityDate) {
					var when time.Time
					if _, err := asn1.UnmarshalWithParams(x.Value, &when, "generalized"); err != nil || !when.Equal(e.InvalidityDate) {
						t.Fatalf("entry %d invalidity date %v (%v), want %v", i, when, err, e.InvalidityDate)
					}
					hasInval = true
				}
			}
			if hasInval != !e.InvalidityDate.IsZero() {
				t.Fatalf("entry %d invalidity date present %v, want %v", i, hasInval, !e.InvalidityDate.IsZero())
			}
		}
	})
}

// FuzzCreateResponse round-trips the OCSP response encoder, nonce
// extension included, through golang.org/x/crypto/ocsp and our own
// responseExtensions reader: whatever it agrees to sign verifies under the
// issuer and carries the CertID, status, times, reason and nonce it was
// given, the nonce in responseExtensions and nowhere else.
func FuzzCreateResponse(f *testing.F) {
	ca := newTestCA(f, "p256")
	f.Add([]byte{0x01}, uint8(0), uint8(0), uint8(0), []byte(nil))
	f.Add([]byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(1), uint8(1), uint8(1), append([]byte{0x04, 0x10}, bytes.Repeat([]byte{0xab}, 16)...))
	f.Add([]byte{0x7f, 0xff}, uint8(2), uint8(4), uint8(2), []byte{0x04, 0x01, 0x00})
	f.Add([]byte{}, uint8(1), uint8(8), uint8(3), bytes.Repeat([]byte{9}, 132))
	f.Fuzz(func(t *testing.T, serial []byte, status, reason, hashSel uint8, nonce []byte) {
		hashes := []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512}
		h := hashes[int(hashSel)%len(hashes)]
		sn := new(big.Int).SetBytes(serial)
		id, err := NewCertID(ca.issuing, h, sn)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
		r := Response{CertID: id, Status: Status(status % 4), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour), ProducedAt: now,
			Reason: int(reason % 12), Nonce: nonce}
		if r.Status == Revoked {
			r.RevokedAt = now.Add(-time.Hour)
		}
		der, err := CreateResponse(ca.issuing, nil, ca.issuingKey, r)
		if err != nil {
			return
		}
		got, err := ocsp.ParseResponse(der, ca.issuing)
		if err != nil {
			t.Fatalf("x/crypto/ocsp: %v", err)
		}
		wantStatus := [...]int{ocsp.Good, ocsp.Revoked, ocsp.Unknown}[r.Status]
		if got.SerialNumber.Cmp(sn) != 0 || got.Status != wantStatus || got.IssuerHash != h ||
			!got.ThisUpdate.Equal(now) || !got.NextUpdate.Equal(r.NextUpdate) || !got.ProducedAt.Equal(now) {
			t.Fatalf("parsed %+v, want serial %x status %d hash %v", got, sn, wantStatus, h)
		}
		if r.Status == Revoked && (got.RevocationReason != r.Reason || !got.RevokedAt.Equal(r.RevokedAt)) {
			t.Fatalf("revoked: reason %d at %v, want %d at %v", got.RevocationReason, got.RevokedAt, r.Reason, r.RevokedAt)
		}
		gotNonce, single := responseExtensions(t, der)
		if !bytes.Equal(gotNonce, nonce) || single {
			t.Fatalf("nonce %x (single extensions %v), want %x in responseExtensions only", gotNonce, single, nonce)
		}
	})
}
