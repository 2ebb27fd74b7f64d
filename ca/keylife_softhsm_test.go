package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestKeyLifecycleSoftHSM is the issue's rotation "done when" on a real
// SoftHSM2 token, on SQLite and on PostgreSQL: with certificates
// outstanding under the old issuing CA, a rotation switches the running
// engine to a key generated on the token (no restart); both chains
// verify; the old issuer keeps its CRL and OCSP; a retired key refuses to
// sign in the signing path; destroy is refused while duties remain and,
// once they ended, removes the private key from the token while the
// inventory keeps the public key.
//
// Not parallel: SOFTHSM2_CONF is process-wide.
func TestKeyLifecycleSoftHSM(t *testing.T) {
	if testing.Short() {
		t.Skip("SoftHSM test skipped in -short mode")
	}
	for name, open := range map[string]func(testing.TB) *inventory.Store{"sqlite": inventorytest.SQLite, "postgres": inventorytest.Postgres} {
		t.Run(name, func(t *testing.T) {
			uri, pin := hsmtest.SoftHSM(t)
			testKeyLifecycleReal(t, open(t), openBackend(t, uri, pin))
		})
	}
}

func testKeyLifecycleReal(t *testing.T, st *inventory.Store, b hsm.Backend) {
	ctx := context.Background()
	who := Actor{Name: "test"}
	res, err := Init(ctx, InitOptions{Store: st, Keys: b, RootKeyType: hsm.ECP256, IssuingKeyType: hsm.ECP256, URLs: testURLs, Actor: "test", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SyncKeys(ctx, st, b, KeyPolicy{}, who); err != nil {
		t.Fatal(err)
	}
	meter, err := NewMeteredKeys(ctx, b, st, MeterOptions{FlushEvery: -1, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Options{Store: st, Keys: meter, URLs: testURLs, Logger: discardLogger(), RevocationStore: st})
	if err != nil {
		t.Fatal(err)
	}
	oldID := res.IssuingIssuer.ID
	var oldLeaves []*Issued
	for range 2 {
		iss, err := issueOne(t, c)
		if err != nil {
			t.Fatal(err)
		}
		oldLeaves = append(oldLeaves, iss)
	}

	rootSigner, err := meter.Signer(ctx, res.RootKeyURI)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := Rotate(ctx, RotateOptions{Store: st, Keys: meter, RootSigner: rootSigner, NewID: "issuing-hsm-2", URLs: testURLs, Who: who})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := b.Protection(ctx, rot.Key.URI); err != nil || p.Backend != "pkcs11" || !p.OnToken || !p.Sensitive || p.Extractable {
		t.Errorf("new issuing key protection = %+v, %v; want on the token, sensitive, not extractable", p, err)
	}
	if err := meter.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(ctx); err != nil { // what RunIssuerWatch does in a running server
		t.Fatal(err)
	}
	newLeaf, err := issueOne(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if newLeaf.Record.IssuerID != "issuing-hsm-2" || newLeaf.Certificate.CheckSignatureFrom(rot.Cert) != nil {
		t.Fatalf("new issuance by %s, not signed by the new token key", newLeaf.Record.IssuerID)
	}
	roots := x509.NewCertPool()
	roots.AddCert(res.Root)
	for _, tc := range []struct {
		leaf, mid *x509.Certificate
	}{{oldLeaves[0].Certificate, res.Issuing}, {newLeaf.Certificate, rot.Cert}} {
		mids := x509.NewCertPool()
		mids.AddCert(tc.mid)
		if _, err := tc.leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: mids, DNSName: "a.test"}); err != nil {
			t.Errorf("chain via %s: %v", tc.mid.Subject.CommonName, err)
		}
	}
	// The old issuer keeps its CRL and OCSP duty, signed with its token key.
	if _, err := c.Revoke(ctx, RevokeRequest{IssuerID: oldID, Serial: oldLeaves[1].Record.Serial, Reason: "superseded", Actor: "test", Protocol: "cli"}); err != nil {
		t.Fatal(err)
	}
	if err := c.GenerateCRLs(ctx, oldID); err != nil {
		t.Fatalf("CRL of the old issuer after rotation: %v", err)
	}
	crl, err := c.CRL(ctx, oldID+".crl")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseRevocationList(crl.DER)
	if err != nil || parsed.CheckSignatureFrom(res.Issuing) != nil || len(parsed.RevokedCertificateEntries) != 1 {
		t.Errorf("old issuer's CRL after rotation: %v, entries %d", err, len(parsed.RevokedCertificateEntries))
	}
	if a := c.RespondOCSP(ctx, ocspRequest(t, oldLeaves[0].Certificate, res.Issuing)); a.Status != "good" {
		t.Errorf("OCSP for the old issuer's certificate = %s, want good", a.Status)
	}
	if a := c.RespondOCSP(ctx, ocspRequest(t, oldLeaves[1].Certificate, res.Issuing)); a.Status != "revoked" {
		t.Errorf("OCSP for the old issuer's revoked certificate = %s, want revoked", a.Status)
	}

	// Destroy is refused while duties remain, even for a retired key.
	if err := DestroyKeyRetained(ctx, st, meter, oldID, KeyPolicy{}, time.Now(), who); !errors.Is(err, ErrPolicy) {
		t.Errorf("DestroyKey of the active old key = %v, want ErrPolicy", err)
	}
	if err := RetireKey(ctx, st, oldID, time.Now(), true, who); err != nil {
		t.Fatal(err)
	}
	if err := meter.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := meter.Signer(ctx, res.IssuingKeyURI); !errors.Is(err, ErrKeyRetired) {
		t.Errorf("Signer of the retired key = %v, %v; want ErrKeyRetired", s, err)
	}
	if err := DestroyKeyRetained(ctx, st, meter, oldID, KeyPolicy{}, time.Now(), who); !errors.Is(err, ErrPolicy) {
		t.Errorf("DestroyKey with unexpired certificates = %v, want ErrPolicy", err)
	}
	if _, err := b.Signer(ctx, res.IssuingKeyURI); err != nil {
		t.Errorf("a refused destroy removed the key from the token: %v", err)
	}
	after := oldLeaves[0].Certificate.NotAfter.Add(time.Hour)
	if err := DestroyKeyRetained(ctx, st, meter, oldID, KeyPolicy{}, after, who); err != nil {
		t.Fatalf("DestroyKey after the last certificate expired = %v", err)
	}
	if _, err := b.Signer(ctx, res.IssuingKeyURI); !errors.Is(err, hsm.ErrNotFound) {
		t.Errorf("the destroyed key is still on the token: %v", err)
	}
	if k, err := st.Key(ctx, oldID); err != nil || k.Status != inventory.KeyDestroyed || len(k.PublicKey) == 0 {
		t.Errorf("destroyed key row = %+v, %v; want destroyed with its public key", k, err)
	}
	if err := meter.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if k, _ := st.Key(ctx, "issuing-hsm-2"); k == nil || k.Signatures < 2 {
		t.Errorf("new key usage = %+v, want its CSR, certificate and OCSP signatures counted", k)
	}
}
