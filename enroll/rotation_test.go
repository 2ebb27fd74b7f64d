package enroll_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"testing"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestCACertsDuringRotation: after a rotation, /cacerts returns the new
// issuing CA first, the old one (still serving CRLs and OCSP for the
// certificates it signed) next, and the root last; before it, only the
// one issuing CA and the root.
func TestCACertsDuringRotation(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBase(t, st)
			oldID := b.ca.IssuerID()
			fetch := func(e *testEnv) []string {
				t.Helper()
				resp, err := e.client(nil).Get(e.url("/cacerts"))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("cacerts status %d: %s", resp.StatusCode, body)
				}
				der, err := base64.StdEncoding.DecodeString(string(body))
				if err != nil {
					t.Fatal(err)
				}
				certs, err := enroll.ParseCertsOnly(der)
				if err != nil {
					t.Fatal(err)
				}
				var cns []string
				for _, c := range certs {
					cns = append(cns, c.Subject.CommonName)
				}
				return cns
			}
			e := newEnv(t, b, nil)
			before := fetch(e)
			if len(before) != 2 || before[1] != b.ca.Root().Subject.CommonName {
				t.Fatalf("cacerts before rotation = %q, want the issuing CA and the root", before)
			}

			issuers, err := b.store.Issuers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var rootURI string
			for _, is := range issuers {
				if is.IsRoot {
					rootURI = is.KeyURI
				}
			}
			rootSigner, err := b.keys.Signer(ctx, rootURI)
			if err != nil {
				t.Fatal(err)
			}
			res, err := ca.Rotate(ctx, ca.RotateOptions{Store: b.store, Keys: b.keys, RootSigner: rootSigner, NewID: "issuing-new",
				Subject: ca.Subject{CommonName: "EST Rotation Test CA"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.ca.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			if b.ca.IssuerID() != "issuing-new" {
				t.Fatalf("after Reload the CA issues with %s, want issuing-new", b.ca.IssuerID())
			}
			after := fetch(e)
			oldCN := before[0]
			want := []string{res.Cert.Subject.CommonName, oldCN, b.ca.Root().Subject.CommonName}
			if len(after) != len(want) {
				t.Fatalf("cacerts during the overlap = %q, want %q", after, want)
			}
			for i := range want {
				if after[i] != want[i] {
					t.Fatalf("cacerts during the overlap = %q, want %q (old issuer %s)", after, want, oldID)
				}
			}
		})
	}
}
