package enroll_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory"
)

// csrFor makes a P-256 CSR for subject with the given SANs.
func csrFor(t testing.TB, subject pkix.Name, dns []string, uris ...string) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.CertificateRequest{Subject: subject, DNSNames: dns}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// testIDevID: a label that trusts a manufacturer root admits a device
// certificate from it for simpleenroll, for the identity the label maps it
// to and no other (idevid_identity: subject, serial_number, approval,
// token); such a certificate never re-enrolls (only MICA certificates
// renew), and a label without that root refuses it.
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
	idevSubject := pkix.Name{CommonName: "idev-0001", SerialNumber: "0001"}
	devDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(77),
		Subject: idevSubject, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, root, devKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	rootFile := writeTemp(t, "mfr-root.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}))
	e := newEnv(t, b, func(c *enroll.Config) {
		mfr := func(mode string) enroll.Label {
			return enroll.Label{Profile: "device", ClientCerts: true, TrustedRoots: []string{rootFile}, IDevIDIdentity: mode}
		}
		c.Labels["factory"] = mfr("")
		c.Labels["factory-sn"] = mfr(enroll.IDevIDSerialNumber)
		held := mfr(enroll.IDevIDApproval)
		held.Approval = true
		c.Labels["factory-held"] = held
		tok := mfr(enroll.IDevIDToken)
		tok.Tokens = true
		c.Labels["factory-tok"] = tok
	})
	idev := e.client(&tls.Certificate{Certificate: [][]byte{devDER}, PrivateKey: devKey})
	sameSubject := csrFor(t, idevSubject, nil)
	tu, tp := e.token("factory-tok", "gw-7.example.test")
	tests := []struct {
		name       string
		path       string
		user, pass string
		body       []byte
		want       int
	}{
		{"subject: the IDevID's own subject", "/factory/simpleenroll", "", "", sameSubject, 200},
		{"subject: another name", "/factory/simpleenroll", "", "", csrFor(t, pkix.Name{CommonName: "ldev-0001"}, nil), 403},
		{"subject: own subject plus a DNS name", "/factory/simpleenroll", "", "", csrFor(t, idevSubject, []string{"payments.example.com"}), 403},
		{"subject: own subject plus a SPIFFE URI", "/factory/simpleenroll", "", "", csrFor(t, idevSubject, nil, "spiffe://example.com/payments"), 403},
		{"serial_number: CN is the serialNumber", "/factory-sn/simpleenroll", "", "", csrFor(t, pkix.Name{CommonName: "0001"}, nil), 200},
		{"serial_number: CN is not the serialNumber", "/factory-sn/simpleenroll", "", "", sameSubject, 403},
		{"serial_number: extra name", "/factory-sn/simpleenroll", "", "", csrFor(t, pkix.Name{CommonName: "0001"}, []string{"payments.example.com"}), 403},
		{"approval: any names are held for the operator", "/factory-held/simpleenroll", "", "", csrFor(t, pkix.Name{CommonName: "line-3-robot"}, nil), 202},
		{"token: IDevID without the token", "/factory-tok/simpleenroll", "", "", csrFor(t, pkix.Name{CommonName: "gw-7.example.test"}, nil), 401},
		{"token: names outside the token", "/factory-tok/simpleenroll", tu, tp, csrFor(t, pkix.Name{CommonName: "payments.example.com"}, nil), 403},
		{"token: the token's names", "/factory-tok/simpleenroll", tu, tp, csrFor(t, pkix.Name{CommonName: "gw-7.example.test"}, nil), 200},
		{"label without the root", "/certonly/simpleenroll", "", "", sameSubject, 401},
		{"IDevID re-enroll", "/factory/simplereenroll", "", "", sameSubject, 401},
	}
	for _, tc := range tests {
		if r := post(t, idev, e.url(tc.path), tc.user, tc.pass, b64(tc.body), nil); r.code != tc.want {
			t.Errorf("%s: %s = %d %q, want %d", tc.name, tc.path, r.code, short(r.body), tc.want)
		}
	}
	// What the subject mapping issued carries the IDevID's name and nothing else.
	got, err := b.store.FindCertificates(context.Background(), inventory.CertFilter{Requester: "idevid:idev-0001/4d", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got {
		if c.CommonName != "idev-0001" && c.CommonName != "0001" {
			t.Errorf("an IDevID obtained a certificate for %q %v", c.CommonName, c.SANs)
		}
	}
	if len(got) != 2 {
		t.Errorf("%d certificates requested by the IDevID alone, want 2 (subject and serial_number mappings)", len(got))
	}
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir()}
	return e.write(name, data)
}
