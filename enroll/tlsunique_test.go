package enroll_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/mica-pki/mica/enroll"
)

// csrWithChallenge builds a P-256 CSR for cn carrying a challengePassword
// attribute, which crypto/x509 cannot write.
func csrWithChallenge(t *testing.T, cn, password string) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(k.Public())
	subj, _ := asn1.Marshal(pkix.Name{CommonName: cn}.ToRDNSequence())
	pw, _ := asn1.MarshalWithParams(password, "utf8")
	attr, _ := asn1.Marshal(struct {
		Type   asn1.ObjectIdentifier
		Values []asn1.RawValue `asn1:"set"`
	}{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}, []asn1.RawValue{{FullBytes: pw}}})
	tbs, err := asn1.Marshal(struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Attributes asn1.RawValue
	}{0, asn1.RawValue{FullBytes: subj}, asn1.RawValue{FullBytes: spki},
		asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: attr}})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tbs)
	sig, _ := ecdsa.SignASN1(rand.Reader, k, sum[:])
	der, err := asn1.Marshal(struct {
		TBS    asn1.RawValue
		Alg    pkix.AlgorithmIdentifier
		Signed asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}},
		asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParseCertificateRequest(der); err != nil {
		t.Fatalf("test CSR does not parse: %v", err)
	}
	return der
}

// TestTLSUnique: on a tls_unique label the CSR must carry this
// connection's tls-unique as challengePassword; another value, or TLS 1.3,
// is refused.
func testTLSUnique(t *testing.T, b *base) {
	e := newEnv(t, b, func(c *enroll.Config) {
		c.Labels["bound"] = enroll.Label{Profile: "device", Tokens: true, TLSUnique: true}
	})
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Root())
	addr := e.srv.Listener.Addr().String()
	// One connection, so the tls-unique the CSR carries is the one the
	// request arrives on.
	enrollOn := func(maxVersion uint16, password func(tls.ConnectionState) string) int {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: maxVersion, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		u, p := e.token("bound")
		body := []byte(base64.StdEncoding.EncodeToString(csrWithChallenge(t, "bound-dev", password(conn.ConnectionState()))))
		c := &http.Client{Transport: &http.Transport{DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }}}
		req, _ := http.NewRequest(http.MethodPost, e.url("/bound/simpleenroll"), bytes.NewReader(body))
		req.SetBasicAuth(u, p)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	unique := func(cs tls.ConnectionState) string { return base64.StdEncoding.EncodeToString(cs.TLSUnique) }
	if code := enrollOn(tls.VersionTLS12, unique); code != 200 {
		t.Errorf("matching tls-unique = %d, want 200", code)
	}
	if code := enrollOn(tls.VersionTLS12, func(tls.ConnectionState) string { return "not-it" }); code != 403 {
		t.Errorf("wrong challengePassword = %d, want 403", code)
	}
	if code := enrollOn(tls.VersionTLS13, unique); code != 403 {
		t.Errorf("TLS 1.3 on a tls-unique label = %d, want 403", code)
	}
}
