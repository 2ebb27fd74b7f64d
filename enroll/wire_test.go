package enroll

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// TestDecodeBody: every request spelling RFC 8951 and the field allow
// decodes to the same DER.
func TestDecodeBody(t *testing.T) {
	t.Parallel()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "w"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	wrap := func(s string, n int, eol string) string {
		var b strings.Builder
		for len(s) > n {
			b.WriteString(s[:n] + eol)
			s = s[n:]
		}
		return b.String() + s + eol
	}
	for name, body := range map[string]string{
		"one line":           b64,
		"one line + LF":      b64 + "\n",
		"76 LF":              wrap(b64, 76, "\n"),
		"64 CRLF":            wrap(b64, 64, "\r\n"),
		"unpadded":           strings.TrimRight(b64, "="),
		"PEM":                string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
		"raw DER":            string(der),
		"leading blank line": "\r\n" + wrap(b64, 60, "\r\n"),
	} {
		got, err := decodeBody([]byte(body))
		if err != nil || !bytes.Equal(got, der) {
			t.Errorf("decodeBody(%s) = %d bytes, %v; want the CSR", name, len(got), err)
		}
	}
	for name, body := range map[string]string{"empty": "", "spaces": "  \n", "junk": "%%%", "bad PEM": "-----BEGIN X-----\nzz"} {
		if _, err := decodeBody([]byte(body)); err == nil {
			t.Errorf("decodeBody(%s) succeeded, want an error", name)
		}
	}
}

// TestWrap76: responses are base64 in lines of at most 76 characters and
// decode back, and certsOnly round-trips.
func TestWrap76(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte{0x5a}, 1000)
	out := wrap76(data)
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if len(line) > 76 {
			t.Fatalf("line of %d characters", len(line))
		}
	}
	back, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(out), "\n", ""))
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("wrap76 does not round-trip: %v", err)
	}

	// certsOnly: a degenerate SignedData (RFC 5652 §5, the "certs-only"
	// reply of RFC 7030 §4.1.3) holding the certificates in order, read
	// here with the test's own ASN.1 description rather than
	// parseCertsOnly, then once more through wrap76 and decodeBody.
	certs := []*x509.Certificate{namedCert(t, "first"), namedCert(t, "second"), namedCert(t, "third")}
	p7, err := certsOnly(certs)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := decodeBody(wrap76(p7))
	if err != nil || !bytes.Equal(wire, p7) {
		t.Fatalf("certsOnly through wrap76 and decodeBody: %v", err)
	}
	var ci struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if rest, err := asn1.Unmarshal(wire, &ci); err != nil || len(rest) != 0 || !ci.ContentType.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}) {
		t.Fatalf("certsOnly ContentInfo: %v %v, rest %d", ci.ContentType, err, len(rest))
	}
	var sd struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		Encap            struct{ ContentType asn1.ObjectIdentifier }
		Certificates     asn1.RawValue
		SignerInfos      asn1.RawValue
	}
	if rest, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil || len(rest) != 0 {
		t.Fatalf("certsOnly SignedData: %v", err)
	}
	if sd.Version != 1 || sd.DigestAlgorithms.Tag != asn1.TagSet || len(sd.DigestAlgorithms.Bytes) != 0 ||
		!sd.Encap.ContentType.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}) ||
		sd.SignerInfos.Tag != asn1.TagSet || len(sd.SignerInfos.Bytes) != 0 {
		t.Fatalf("certsOnly is not a degenerate SignedData: %+v", sd)
	}
	if sd.Certificates.Class != asn1.ClassContextSpecific || sd.Certificates.Tag != 0 {
		t.Fatalf("certsOnly certificates field has tag %d/%d", sd.Certificates.Class, sd.Certificates.Tag)
	}
	got, err := x509.ParseCertificates(sd.Certificates.Bytes)
	if err != nil || len(got) != len(certs) {
		t.Fatalf("certsOnly holds %d certificates (%v), want %d", len(got), err, len(certs))
	}
	for i := range certs {
		if !got[i].Equal(certs[i]) {
			t.Errorf("certificate %d is %s, want %s", i, got[i].Subject, certs[i].Subject)
		}
	}
	if back, err := parseCertsOnly(wire); err != nil || len(back) != len(certs) || !back[2].Equal(certs[2]) {
		t.Errorf("parseCertsOnly(certsOnly) = %d certificates, %v", len(back), err)
	}
}

func namedCert(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
