package enroll

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
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
}
