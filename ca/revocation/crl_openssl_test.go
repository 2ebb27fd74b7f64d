package revocation

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCRLOpenSSLVerify is the relying-party view: openssl parses the DER
// and `openssl verify -crl_check` rejects the revoked leaf but not its
// sibling. Then the same with sharded CRLs, where the IDP must match the
// leaf's CRL distribution point.
func TestCRLOpenSSLVerify(t *testing.T) {
	for _, kind := range []string{"p256", "p384", "rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) { testCRLOpenSSLVerify(t, kind) })
	}
}

func testCRLOpenSSLVerify(t *testing.T, kind string) {
	ca := newTestCA(t, kind)
	revoked := ca.leaf(t, "revoked", "")
	ca.leaf(t, "fine", "")
	entries := []Entry{{Serial: revoked.SerialNumber, RevokedAt: time.Now().Add(-time.Minute), Reason: ReasonKeyCompromise, InvalidityDate: time.Now().Add(-time.Hour)}}
	der, _ := writeCRL(t, testTemplate(1), ca, SliceSource(entries))
	if err := os.WriteFile(filepath.Join(ca.dir, "crl.der"), der, 0o600); err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(ca.dir, "crl.pem"), "X509 CRL", der)
	out, err := openssl(t, ca.dir, "crl", "-inform", "DER", "-in", "crl.der", "-text", "-noout")
	if err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	for _, want := range []string{"X509v3 CRL Number", "X509v3 Authority Key Identifier", "Key Compromise", "Invalidity Date", strings.ToUpper(revoked.SerialNumber.Text(16))} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl crl output lacks %q:\n%s", want, out)
		}
	}
	verify := func(crl, leaf string) (string, error) {
		return openssl(t, ca.dir, "verify", "-crl_check", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "-CRLfile", crl, leaf)
	}
	if out, err := verify("crl.pem", "revoked.pem"); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Fatalf("openssl verify accepted the revoked leaf: %v\n%s", err, out)
	}
	if out, err := verify("crl.pem", "fine.pem"); err != nil || !strings.Contains(out, "fine.pem: OK") {
		t.Fatalf("openssl verify rejected the good leaf: %v\n%s", err, out)
	}
	if kind != "p256" {
		return
	}

	// Sharded: two shards, each CRL naming its own URL.
	const shards = 2
	url := func(k int) string { return "http://ca.test/crl/issuing-" + string(rune('0'+k)) + ".crl" }
	var leaves [shards]*x509.Certificate
	for k := 0; k < shards; {
		c := ca.leaf(t, "shard", url(k))
		if CRLShard(c.SerialNumber, shards) != k { // reissue until the serial lands in shard k
			continue
		}
		leaves[k] = c
		if err := os.Rename(filepath.Join(ca.dir, "shard.pem"), filepath.Join(ca.dir, "shard"+string(rune('0'+k))+".pem")); err != nil {
			t.Fatal(err)
		}
		k++
	}
	for k := range shards {
		tmpl := testTemplate(int64(100 + k))
		tmpl.IssuingDistributionPoint = url(k)
		der, _ := writeCRL(t, tmpl, ca, SliceSource([]Entry{{Serial: leaves[k].SerialNumber, RevokedAt: time.Now().Add(-time.Minute), Reason: ReasonSuperseded}}))
		writePEM(t, filepath.Join(ca.dir, "shard"+string(rune('0'+k))+".crl.pem"), "X509 CRL", der)
	}
	if out, err := verify("shard1.crl.pem", "shard1.pem"); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Fatalf("shard 1 CRL did not revoke the shard 1 leaf: %v\n%s", err, out)
	}
	// Shard 0's CRL is out of scope for a shard 1 certificate: the IDP does
	// not match its CDP, so OpenSSL refuses it ("different CRL scope").
	if out, err := verify("shard0.crl.pem", "shard1.pem"); err == nil || !strings.Contains(out, "different CRL scope") {
		t.Fatalf("shard 0 CRL was accepted for a shard 1 leaf: %v\n%s", err, out)
	}
}
