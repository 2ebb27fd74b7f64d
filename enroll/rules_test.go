package enroll_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory"
)

// reCSR is a CSR for exactly the identity of cred's certificate, signed by
// its key (a renewal that keeps the key).
func reCSR(t testing.TB, cred *tls.Certificate) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{Subject: cred.Leaf.Subject,
		DNSNames: cred.Leaf.DNSNames}, cred.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// testLabelRules: simplereenroll honours the label's rules like the other
// operations: accepted credentials, profile and approval.
func testLabelRules(t *testing.T, b *base) {
	e := newEnv(t, b, func(c *enroll.Config) {
		c.Labels["tokens-only"] = enroll.Label{Profile: "device", Tokens: true}
		c.Labels["clients"] = enroll.Label{Profile: "client", ClientCerts: true}
		c.Labels["clients-from-device"] = enroll.Label{Profile: "client", ClientCerts: true, RenewProfiles: []string{"device"}}
		c.Labels["held-certs"] = enroll.Label{Profile: "device", ClientCerts: true, Approval: true}
		c.Labels["bound-certs"] = enroll.Label{Profile: "device", ClientCerts: true, TLSUnique: true}
	})
	ctx := context.Background()
	cred, _ := e.enrollDevice(t, "rules-dev.test")
	tests := []struct {
		name, path string
		want       int
	}{
		{"label that accepts no client certificates", "/tokens-only/simplereenroll", 401},
		{"label of another profile", "/clients/simplereenroll", 403},
		{"tls_unique label, CSR without the channel binding", "/bound-certs/simplereenroll", 403},
	}
	for _, tc := range tests {
		if r := post(t, e.client(cred), e.url(tc.path), "", "", b64(reCSR(t, cred)), nil); r.code != tc.want {
			t.Errorf("%s: %s = %d %q, want %d", tc.name, tc.path, r.code, short(r.body), tc.want)
		}
	}
	// renew_profiles lets a label renew another profile's certificates,
	// issuing under its own.
	cred2, _ := e.enrollDevice(t, "rules-dev2.test")
	r := post(t, e.client(cred2), e.url("/clients-from-device/simplereenroll"), "", "", b64(reCSR(t, cred2)), nil)
	if r.code != 200 {
		t.Fatalf("renew_profiles re-enroll = %d %q, want 200", r.code, r.body)
	}
	renewed := parseEnrolled(t, r.body)
	if rec := certBySerial(t, b, renewed); rec.Profile != "client" {
		t.Errorf("renewal issued under profile %s, want the label's profile client", rec.Profile)
	}

	// Approval holds a re-enrollment too; only the same certificate picks
	// it up, at simplereenroll, and the renewal supersedes it.
	cred3, old := e.enrollDevice(t, "rules-held.test")
	csr3 := b64(reCSR(t, cred3))
	if r := post(t, e.client(cred3), e.url("/held-certs/simplereenroll"), "", "", csr3, nil); r.code != 202 {
		t.Fatalf("re-enroll on an approval label = %d %q, want 202", r.code, r.body)
	}
	var id string
	pend, err := b.store.ESTPendings(ctx, "pending")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pend {
		if p.Label == "held-certs" {
			id = p.ID
		}
	}
	if id == "" {
		t.Fatal("the held re-enrollment is not pending")
	}
	if err := b.store.DecideESTPending(ctx, id, "approved", "operator", inventory.Event{Actor: "operator", Protocol: "cli", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// A second certificate for the same name cannot collect (and so
	// supersede with) the renewal approved for the first.
	twin, _ := e.enrollDevice(t, "rules-held.test")
	if r := post(t, e.client(twin), e.url("/held-certs/simplereenroll"), "", "", csr3, nil); r.code != 403 {
		t.Errorf("held re-enrollment picked up by another certificate = %d %q, want 403", r.code, short(r.body))
	}
	if r := post(t, e.client(nil), e.url("/held-certs/simpleenroll"), "", "", csr3, nil); r.code != 403 {
		t.Errorf("held re-enrollment picked up at simpleenroll = %d %q, want 403", r.code, r.body)
	}
	r = post(t, e.client(cred3), e.url("/held-certs/simplereenroll"), "", "", csr3, nil)
	if r.code != 200 {
		t.Fatalf("approved re-enrollment pick-up = %d %q, want 200", r.code, r.body)
	}
	if oldRec := certBySerial(t, b, old); oldRec.State != inventory.StateSuperseded {
		t.Errorf("renewed certificate is %s, want superseded", oldRec.State)
	}
}

func certBySerial(t testing.TB, b *base, c *x509.Certificate) inventory.Certificate {
	t.Helper()
	got, err := b.store.FindCertificates(context.Background(), inventory.CertFilter{Serial: c.SerialNumber.Text(16), Limit: 2})
	if err != nil || len(got) != 1 {
		t.Fatalf("certificate %x: %v (%d found)", c.SerialNumber, err, len(got))
	}
	return got[0]
}
