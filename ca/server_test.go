package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"slices"
	"testing"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

func TestServerCertificate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		profiles    map[string]Profile
		wantProfile string
	}{
		{"default server profile", nil, "server"},
		{"restricted server profile", map[string]Profile{"server": {DNS: []string{"*.corp.test"}, ExtKeyUsage: []string{"serverAuth"}, MaxLifetime: 30 * day}}, builtinServerName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, hsm.ECP256, func(o *Options) { o.Profiles = tc.profiles })
			tc_, err := env.ca.ServerCertificate(context.Background(), []string{"ca.corp.test", "192.0.2.10", "LOCALHOST"})
			if err != nil {
				t.Fatalf("ServerCertificate = %v", err)
			}
			leaf := tc_.Leaf
			if k, ok := tc_.PrivateKey.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("key = %T, want ECDSA P-256", tc_.PrivateKey)
			}
			if !slices.Equal(leaf.DNSNames, []string{"localhost", "ca.corp.test"}) || len(leaf.IPAddresses) != 3 {
				t.Errorf("names = %v %v, want localhost, ca.corp.test and three IPs", leaf.DNSNames, leaf.IPAddresses)
			}
			if len(tc_.Certificate) != 2 {
				t.Errorf("chain length %d, want leaf + issuing CA", len(tc_.Certificate))
			}
			roots := x509.NewCertPool()
			roots.AddCert(env.ca.Root())
			inter := x509.NewCertPool()
			inter.AddCert(env.ca.Chain()[0])
			for _, name := range []string{"localhost", "127.0.0.1", "::1", "ca.corp.test", "192.0.2.10"} {
				if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter, CurrentTime: testNow}); err != nil {
					t.Errorf("Verify(%s) = %v", name, err)
				}
			}
			rec, err := env.store.Certificate(context.Background(), env.ca.IssuerID(), leaf.SerialNumber.Text(16))
			if err != nil || rec.State != inventory.StateIssued || rec.Protocol != "server" || rec.Profile != tc.wantProfile {
				t.Errorf("record = %+v, %v; want issued, protocol server, profile %s", rec, err, tc.wantProfile)
			}
		})
	}
}
