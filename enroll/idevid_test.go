package enroll_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/mica-pki/mica/enroll"
)

// testIDevID: a label that trusts a manufacturer root admits a device
// certificate from it for simpleenroll, but such a certificate can never
// re-enroll (only MICA certificates renew), and a label without that root
// refuses it.
func testIDevID(t *testing.T, b *base) {
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Acme Devices Manufacturing Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	devKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	devDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(77),
		Subject: pkix.Name{CommonName: "idev-0001", SerialNumber: "0001"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, root, devKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, b, func(c *enroll.Config) {
		c.Labels["factory"] = enroll.Label{Profile: "device", ClientCerts: true,
			TrustedRoots: []string{writeTemp(t, "mfr-root.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}))}}
	})
	idev := e.client(&tls.Certificate{Certificate: [][]byte{devDER}, PrivateKey: devKey})
	der, _ := csr(t, "ldev-0001")
	if r := post(t, idev, e.url("/factory/simpleenroll"), "", "", b64(der), nil); r.code != 200 {
		t.Errorf("IDevID enroll on the factory label = %d %s, want 200", r.code, r.body)
	}
	if r := post(t, idev, e.url("/certonly/simpleenroll"), "", "", b64(der), nil); r.code != 401 {
		t.Errorf("IDevID enroll on a label without the root = %d, want 401", r.code)
	}
	if r := post(t, idev, e.url("/factory/simplereenroll"), "", "", b64(der), nil); r.code != 401 {
		t.Errorf("IDevID re-enroll = %d, want 401", r.code)
	}
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir()}
	return e.write(name, data)
}
