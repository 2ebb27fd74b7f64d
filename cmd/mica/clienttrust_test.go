package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"testing"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/config"
)

// TestClientTrustFollowsRotation: `mica serve` verifies client
// certificates against a pool that follows a rotation without a restart.
// A device certificate from an issuing CA created after the pool was
// built is not trusted by the stale pool; once this replica switches
// issuance to that CA, the next handshake's pool trusts it, and the old
// CA's devices stay trusted through the overlap.
func TestClientTrustFollowsRotation(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	c := newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing")
	ctx := context.Background()
	cfg, err := config.Load(config.Path(c.dir))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	g, err := openEngine(ctx, &env{stdout: &out, stderr: &out}, cfg, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	trust, err := newClientTrust(ctx, g.ca, cfg.EST, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cn string) *x509.Certificate {
		t.Helper()
		csr, err := os.ReadFile(makeCSR(t, csrOpts{cn: cn}))
		if err != nil {
			t.Fatal(err)
		}
		iss, err := g.ca.Issue(ctx, ca.Request{CSR: csr, Profile: "client", Requester: "test", Protocol: "cli"})
		if err != nil {
			t.Fatal(err)
		}
		return iss.Certificate
	}
	trusted := func(p *x509.CertPool, leaf *x509.Certificate) bool {
		// No intermediates: a device often sends its leaf alone.
		_, err := leaf.Verify(x509.VerifyOptions{Roots: p, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err == nil
	}
	oldLeaf := issue("old-device.test")
	if !trusted(trust.Pool(), oldLeaf) {
		t.Fatal("a device under the issuing CA is not trusted")
	}
	stale := trust.Pool()

	// Another process rotates (activating now); this replica reloads.
	c.must(c.data("ca", "rotate", "--id", "issuing-next")...)
	if err := g.ca.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if g.ca.IssuerID() != "issuing-next" {
		t.Fatalf("active issuer after reload = %s", g.ca.IssuerID())
	}
	newLeaf := issue("new-device.test")
	if trusted(stale, newLeaf) {
		t.Fatal("the pool built before the rotation trusts the new CA's device; the test proves nothing")
	}
	fresh := trust.Pool()
	if !trusted(fresh, newLeaf) || !trusted(fresh, oldLeaf) {
		t.Errorf("after the switch: new device trusted %v, old device trusted %v; want both", trusted(fresh, newLeaf), trusted(fresh, oldLeaf))
	}
}
