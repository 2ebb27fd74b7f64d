package revocation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mica-pki/mica/internal/testtool"
)

// testCA is a throwaway two-level PKI (root → issuing) built with
// crypto/x509, written to PEM files so the openssl CLI can use it.
type testCA struct {
	dir        string
	rootKey    crypto.Signer
	root       *x509.Certificate
	issuingKey crypto.Signer
	issuing    *x509.Certificate
}

func newKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randSerial(t testing.TB) *big.Int {
	t.Helper()
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return s.Add(s, big.NewInt(1))
}

func mustCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newTestCA makes a P-256 root and an issuing CA with a key of kind.
func newTestCA(t testing.TB, kind string) *testCA {
	t.Helper()
	now := time.Now()
	ca := &testCA{dir: t.TempDir(), rootKey: newKey(t, "p256"), issuingKey: newKey(t, kind)}
	rootTmpl := &x509.Certificate{
		SerialNumber: randSerial(t), Subject: pkix.Name{CommonName: "MICA Test Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true,
	}
	ca.root = mustCert(t, rootTmpl, rootTmpl, ca.rootKey.Public(), ca.rootKey)
	issTmpl := &x509.Certificate{
		SerialNumber: randSerial(t), Subject: pkix.Name{CommonName: "MICA Test Issuing CA " + kind, Organization: []string{"MICA"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	ca.issuing = mustCert(t, issTmpl, ca.root, ca.issuingKey.Public(), ca.rootKey)
	writePEM(t, filepath.Join(ca.dir, "root.pem"), "CERTIFICATE", ca.root.Raw)
	writePEM(t, filepath.Join(ca.dir, "issuing.pem"), "CERTIFICATE", ca.issuing.Raw)
	return ca
}

// leaf issues an end-entity certificate, optionally with a CRL
// distribution point, and writes it to name.pem.
func (ca *testCA) leaf(t testing.TB, name, cdp string) *x509.Certificate {
	t.Helper()
	now := time.Now()
	key := newKey(t, "p256")
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(t), Subject: pkix.Name{CommonName: name + ".test"},
		DNSNames:  []string{name + ".test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(12 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		OCSPServer:  []string{"http://127.0.0.1/ocsp"},
	}
	if cdp != "" {
		tmpl.CRLDistributionPoints = []string{cdp}
	}
	c := mustCert(t, tmpl, ca.issuing, key.Public(), ca.issuingKey)
	writePEM(t, filepath.Join(ca.dir, name+".pem"), "CERTIFICATE", c.Raw)
	return c
}

// delegatedResponder issues an OCSP responder certificate from
// DelegatedResponderTemplate.
func (ca *testCA) delegatedResponder(t testing.TB) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := newKey(t, "p256")
	now := time.Now()
	tmpl, err := DelegatedResponderTemplate(pkix.Name{CommonName: "MICA Test OCSP Responder"}, now.Add(-time.Hour), now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return mustCert(t, tmpl, ca.issuing, key.Public(), ca.issuingKey), key
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// openssl runs the openssl CLI in dir and returns combined output; the
// tests exist to prove interoperability with it, so they skip only when the
// binary is absent.
func openssl(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	path := testtool.Need(t, "openssl")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}
