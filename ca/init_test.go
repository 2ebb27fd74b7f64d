package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

func TestInitDefaults(t *testing.T) {
	t.Parallel()
	store, keys := newFakeStore(), newFakeKeys()
	res, err := Init(context.Background(), InitOptions{Store: store, Keys: keys, Now: fixedClock, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if res.RootIssuer.ID != "root-2026" || res.IssuingIssuer.ID != "issuing-2026" {
		t.Errorf("IDs = %s, %s; want root-2026, issuing-2026", res.RootIssuer.ID, res.IssuingIssuer.ID)
	}
	if res.Root.Subject.CommonName != "MICA Root CA 2026" || res.Issuing.Subject.CommonName != "MICA Issuing CA 2026" {
		t.Errorf("subjects = %q, %q", res.Root.Subject, res.Issuing.Subject)
	}
	if res.RootIssuer.KeyType != "EC-P384" || res.IssuingIssuer.KeyType != "EC-P256" {
		t.Errorf("key types = %s, %s; want EC-P384, EC-P256", res.RootIssuer.KeyType, res.IssuingIssuer.KeyType)
	}
	if got := res.Root.NotAfter.Sub(res.Root.NotBefore); got != DefaultRootValidity {
		t.Errorf("root validity = %v, want %v", got, DefaultRootValidity)
	}
	if got := res.Issuing.NotAfter.Sub(res.Issuing.NotBefore); got != DefaultIssuingValidity {
		t.Errorf("issuing validity = %v, want %v", got, DefaultIssuingValidity)
	}
	if res.RootIssuer.KeyURI == "" || res.RootOffline {
		t.Errorf("online root: KeyURI %q offline %t", res.RootIssuer.KeyURI, res.RootOffline)
	}
	if !res.RootIssuer.IsRoot || res.IssuingIssuer.IsRoot || res.IssuingIssuer.ParentID != "root-2026" {
		t.Errorf("hierarchy: root.IsRoot=%t issuing.IsRoot=%t parent=%q", res.RootIssuer.IsRoot, res.IssuingIssuer.IsRoot, res.IssuingIssuer.ParentID)
	}
	if n := len(store.eventsWith("ca.init", "ok")); n != 2 {
		t.Errorf("%d ca.init events, want 2", n)
	}
	if len(res.Root.CRLDistributionPoints)+len(res.Issuing.CRLDistributionPoints) != 0 {
		t.Errorf("CRL DPs written with no URLs configured")
	}

	_, err = Init(context.Background(), InitOptions{Store: store, Keys: keys, Now: fixedClock, Logger: discardLogger()})
	if !errors.Is(err, ErrConfig) || !strings.Contains(UserMessage(err), "already exists") {
		t.Errorf("second Init = %v, want ErrConfig \"already exists\"", err)
	}
}

func TestInitOfflineRootSeparateBackend(t *testing.T) {
	t.Parallel()
	store, keys, rootKeys := newFakeStore(), newFakeKeys(), newFakeKeys()
	res, err := Init(context.Background(), InitOptions{
		Store: store, Keys: keys, RootKeys: rootKeys, OfflineRoot: true, URLs: testURLs,
		RootID: "corp-root", IssuingID: "corp-issuing-1", Now: fixedClock, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	issuers, _ := store.Issuers(context.Background())
	for _, is := range issuers {
		if is.IsRoot && is.KeyURI != "" {
			t.Errorf("offline root recorded with key URI %q", is.KeyURI)
		}
		if !is.IsRoot && is.KeyURI == "" {
			t.Errorf("issuing CA recorded without key URI")
		}
	}
	if !res.RootOffline || res.RootKeyURI != "fake:corp-root" {
		t.Errorf("result: offline=%t RootKeyURI=%q, want true, fake:corp-root", res.RootOffline, res.RootKeyURI)
	}
	if _, ok := rootKeys.keys["corp-root"]; !ok {
		t.Errorf("root key not in the root backend")
	}
	if _, ok := keys.keys["corp-root"]; ok {
		t.Errorf("root key in the issuing backend")
	}
	c, err := New(context.Background(), Options{Store: store, Keys: keys, Now: fixedClock, URLs: testURLs, Logger: discardLogger()})
	if err != nil {
		t.Fatalf("New with offline root = %v", err)
	}
	if c.IssuerID() != "corp-issuing-1" || c.Root().Subject.CommonName != res.Root.Subject.CommonName || len(c.Chain()) != 1 {
		t.Errorf("New: issuer %s root %s chain %d", c.IssuerID(), c.Root().Subject, len(c.Chain()))
	}
}

func TestInitRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    InitOptions
		kind error
		msg  string
	}{
		{"issuing outlives root", InitOptions{RootValidity: 365 * day, IssuingValidity: 400 * day}, ErrLifetime, "must be shorter than the root's"},
		{"same IDs", InitOptions{RootID: "x", IssuingID: "x"}, ErrConfig, "different IDs"},
		{"bad ID", InitOptions{RootID: "Root CA"}, ErrConfig, "issuer ID"},
		{"unsupported key", InitOptions{IssuingKeyType: "EC-P192"}, ErrConfig, "cannot create EC-P192 keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Store, tc.o.Keys, tc.o.Now, tc.o.Logger = newFakeStore(), newFakeKeys(), fixedClock, discardLogger()
			_, err := Init(context.Background(), tc.o)
			if !errors.Is(err, tc.kind) || !strings.Contains(UserMessage(err), tc.msg) {
				t.Errorf("Init(%s) = %v, want %v containing %q", tc.name, err, tc.kind, tc.msg)
			}
		})
	}
}

// TestSignIntermediateRotation signs a second intermediate with the root
// key, as a key ceremony would, and checks New switches to it.
func TestSignIntermediateRotation(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, hsm.ECP256, nil)
	ctx := context.Background()
	later := testNow.Add(365 * day)
	rootSigner, err := env.keys.Signer(ctx, env.init.RootKeyURI)
	if err != nil {
		t.Fatal(err)
	}
	uri, err := env.keys.CreateKey(ctx, "issuing-2027", hsm.ECP384)
	if err != nil {
		t.Fatal(err)
	}
	newKey, _ := env.keys.Signer(ctx, uri)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "MICA Issuing CA 2027", Country: []string{"ZZ"}}}, newKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := SignIntermediate(ctx, rootSigner, env.init.Root, csr, IntermediateOptions{RootID: env.init.RootIssuer.ID, URLs: testURLs, Validity: 3 * 365 * day, Now: func() time.Time { return later }})
	if err != nil {
		t.Fatalf("SignIntermediate = %v", err)
	}
	if cert.Subject.String() != "CN=MICA Issuing CA 2027" {
		t.Errorf("subject = %q, want the CN only", cert.Subject)
	}
	if errs, warns, _ := lintDER(cert.Raw); len(errs)+len(warns) > 0 {
		t.Errorf("lint: %v %v", errs, warns)
	}
	rec := issuerRecord("issuing-2027", env.init.RootIssuer.ID, cert, uri, later)
	if err := env.store.PutIssuer(ctx, &rec, inventory.Event{Action: "ca.rotate"}); err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Options{Store: env.store, Keys: env.keys, Now: func() time.Time { return later }, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if c.IssuerID() != "issuing-2027" {
		t.Errorf("New picked %s, want the newer issuing-2027", c.IssuerID())
	}
	iss, err := c.Issue(ctx, Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "a.test"), Profile: "server"})
	if err != nil {
		t.Fatal(err)
	}
	if iss.Certificate.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		t.Errorf("P-384 issuer signed with %v", iss.Certificate.SignatureAlgorithm)
	}

	// Refusals.
	other := subjectKey(t, "EC-P384")
	tampered := append([]byte(nil), csr...)
	tampered[len(tampered)-3] ^= 0xff
	for _, tc := range []struct {
		name   string
		signer crypto.Signer
		csr    []byte
		opts   IntermediateOptions
		kind   error
		msg    string
	}{
		{"wrong root key", other, csr, IntermediateOptions{RootID: "r"}, ErrConfig, "does not match"},
		{"outlives root", rootSigner, csr, IntermediateOptions{RootID: "r", Validity: 20 * 365 * day}, ErrLifetime, "not before the root's notAfter"},
		{"weak key", rootSigner, makeCSR(t, subjectKey(t, "RSA-1024"), "x"), IntermediateOptions{RootID: "r"}, ErrWeakKey, "RSA-1024"},
		{"bad signature", rootSigner, tampered, IntermediateOptions{RootID: "r"}, ErrBadCSR, "signature does not verify"},
		{"no root ID", rootSigner, csr, IntermediateOptions{URLs: testURLs}, ErrConfig, "RootID is required"},
	} {
		_, err := SignIntermediate(ctx, tc.signer, env.init.Root, tc.csr, tc.opts)
		if !errors.Is(err, tc.kind) || !strings.Contains(UserMessage(err), tc.msg) {
			t.Errorf("SignIntermediate(%s) = %v, want %v containing %q", tc.name, err, tc.kind, tc.msg)
		}
	}
}

func TestNewRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := newTestEnv(t, hsm.ECP256, nil)

	// The issuing key is gone from the backend.
	_, err := New(ctx, Options{Store: env.store, Keys: newFakeKeys(), Logger: discardLogger(), Now: fixedClock})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(UserMessage(err), "fake:issuing-2026") {
		t.Errorf("New(missing key) = %v, want ErrUnavailable naming fake:issuing-2026", err)
	}
	// A backend whose key of that name is another key.
	wrong := newFakeKeys()
	if _, err := wrong.CreateKey(ctx, "issuing-2026", hsm.ECP256); err != nil {
		t.Fatal(err)
	}
	_, err = New(ctx, Options{Store: env.store, Keys: wrong, Logger: discardLogger(), Now: fixedClock})
	if !errors.Is(err, ErrConfig) || !strings.Contains(UserMessage(err), "does not match") {
		t.Errorf("New(wrong key) = %v, want ErrConfig \"does not match\"", err)
	}
	// Empty store.
	_, err = New(ctx, Options{Store: newFakeStore(), Keys: env.keys, Logger: discardLogger()})
	if !errors.Is(err, ErrConfig) || !strings.Contains(UserMessage(err), "mica init") {
		t.Errorf("New(empty store) = %v, want ErrConfig pointing at mica init", err)
	}
	// Expired issuing CA.
	_, err = New(ctx, Options{Store: env.store, Keys: env.keys, Logger: discardLogger(), Now: func() time.Time { return testNow.Add(6 * 365 * day) }})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(UserMessage(err), "expired") {
		t.Errorf("New(expired) = %v, want ErrUnavailable \"expired\"", err)
	}
}

func TestRedactURI(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"pkcs11:module-path=/x.so;token=mica?pin-value=1234": "pkcs11:module-path=/x.so;token=mica",
		"pkcs11:token=mica;pin-value=1234;object=k":          "pkcs11:token=mica;object=k",
		"softkms:dir=/var/lib/mica/keys":                     "softkms:dir=/var/lib/mica/keys",
	} {
		if got := redactURI(in); got != want {
			t.Errorf("redactURI(%q) = %q, want %q", in, got, want)
		}
	}
}
