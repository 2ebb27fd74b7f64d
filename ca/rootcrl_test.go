package ca

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestRootCRL: init stores the root's CRL (the URL in the issuing CA's
// CDP answers from the start); GenerateCRLs with no issuer re-signs it
// with the root key, like every other issuer's; a request naming the root
// as OCSP issuer is refused unsigned, so the root key never signs OCSP.
func TestRootCRL(t *testing.T) {
	ctx := context.Background()
	e := newRevEnv(t, inventorytest.SQLite(t), RevocationConfig{})
	rootID := e.init.RootIssuer.ID
	if e.init.Issuing.CRLDistributionPoints[0] != testURLs.CRLBase+CRLFileName(rootID, 0, false) {
		t.Fatalf("issuing CA CDP %v does not name the root's CRL", e.init.Issuing.CRLDistributionPoints)
	}
	check := func(when string) int64 {
		t.Helper()
		got, err := e.ca.CRL(ctx, CRLFileName(rootID, 0, false))
		if err != nil {
			t.Fatalf("%s: CRL(%s) = %v, want the root's CRL", when, rootID, err)
		}
		crl, err := x509.ParseRevocationList(got.DER)
		if err != nil {
			t.Fatalf("%s: root CRL does not parse: %v", when, err)
		}
		if err := crl.CheckSignatureFrom(e.init.Root); err != nil {
			t.Errorf("%s: root CRL not signed by the root: %v", when, err)
		}
		return got.Number
	}
	first := check("after init")
	if err := e.ca.GenerateCRLs(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if n := check("after GenerateCRLs"); n <= first {
		t.Errorf("root CRL number %d after GenerateCRLs, want > %d (re-signed)", n, first)
	}

	req, err := ocsp.CreateRequest(e.init.Issuing, e.init.Root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := e.ca.RespondOCSP(ctx, req); a.Status != "unauthorized" {
		t.Errorf("OCSP naming the root as issuer: %q, want unauthorized (the root signs no OCSP)", a.Status)
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{90 * day, "90d"},
		{3650 * day, "10y"},
		{36 * time.Hour, "1d12h"},
		{24 * time.Hour, "1d"},
		{90 * time.Minute, "1h30m"},
		{30 * time.Second, "30s"},
		{-48 * time.Hour, "-2d"},
		{day + 1500*time.Millisecond, "1d1.5s"},
	} {
		if got := HumanDuration(tc.in); got != tc.want {
			t.Errorf("HumanDuration(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
