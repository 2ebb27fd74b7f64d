package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"sync"
	"testing"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// The real store satisfies the interfaces ca defines.
var (
	_ Store     = (*inventory.Store)(nil)
	_ InitStore = (*inventory.Store)(nil)
)

// openBackend opens a real key backend and closes it with the test.
func openBackend(t testing.TB, uri string, secret hsm.Secret) hsm.Backend {
	t.Helper()
	b, err := hsm.Open(context.Background(), hsm.Config{URI: uri, Secret: secret})
	if err != nil {
		t.Fatalf("hsm.Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func softKMS(t testing.TB) hsm.Backend {
	t.Helper()
	uri, pass := hsmtest.SoftKMS(t)
	return openBackend(t, uri, pass)
}

// realEnv is a CA on real backends: Init, then New, on the given store.
func realEnv(t testing.TB, st *inventory.Store, keys, rootKeys hsm.Backend, offline bool, kt hsm.KeyType) (*CA, *InitResult) {
	t.Helper()
	ctx := context.Background()
	res, err := Init(ctx, InitOptions{
		Store: st, Keys: keys, RootKeys: rootKeys, OfflineRoot: offline,
		IssuingKeyType: kt, URLs: testURLs, Actor: "acceptance", Logger: discardLogger(),
	})
	if err != nil {
		t.Fatalf("Init = %v", err)
	}
	c, err := New(ctx, Options{Store: st, Keys: keys, URLs: testURLs, Logger: discardLogger()})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	return c, res
}

// exercise issues, refuses and revokes through c and checks the store.
func exercise(t *testing.T, c *CA, st *inventory.Store) {
	t.Helper()
	ctx := context.Background()
	iss, err := c.Issue(ctx, Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "www.a.test", "ip:10.0.0.1"),
		Profile: "server", Requester: "acceptance", Protocol: "api", Source: "127.0.0.1"})
	if err != nil {
		t.Fatalf("Issue = %v", err)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(c.Root())
	inter.AddCert(c.Chain()[0])
	if _, err := iss.Certificate.Verify(x509.VerifyOptions{DNSName: "www.a.test", Roots: roots, Intermediates: inter}); err != nil {
		t.Errorf("Verify = %v", err)
	}
	if errs, warns, err := lintDER(iss.Certificate.Raw); err != nil || len(errs)+len(warns) > 0 {
		t.Errorf("lint: %v %v %v", err, errs, warns)
	}
	rec, err := st.Certificate(ctx, c.IssuerID(), iss.Record.Serial)
	if err != nil || rec.State != inventory.StateIssued || string(rec.DER) != string(iss.Certificate.Raw) {
		t.Fatalf("stored = %+v, %v; want issued with the DER", rec, err)
	}
	if rec.KeyType != "EC-P256" || rec.Profile != "server" || rec.Requester != "acceptance" || len(rec.SANs) != 2 {
		t.Errorf("stored metadata = %+v", rec)
	}

	// A renewal supersedes its predecessor in the commit transaction.
	renewal, err := c.Issue(ctx, Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "www.a.test", "ip:10.0.0.1"),
		Profile: "server", Predecessor: colonUpper(iss.Record.Serial)})
	if err != nil {
		t.Fatalf("Issue(renewal) = %v", err)
	}
	if old, err := st.Certificate(ctx, c.IssuerID(), iss.Record.Serial); err != nil || old.State != inventory.StateSuperseded || old.SupersededBy != renewal.Record.Serial {
		t.Errorf("predecessor after renewal = %+v, %v; want superseded by %s", old, err, renewal.Record.Serial)
	}

	// A refusal leaves an event and no row.
	before, _ := st.Count(ctx, inventory.CertFilter{})
	if _, err := c.Issue(ctx, Request{CSR: makeCSR(t, subjectKey(t, "RSA-1024"), "a.test"), Profile: "server"}); !errors.Is(err, ErrWeakKey) {
		t.Errorf("Issue(RSA-1024) = %v, want ErrWeakKey", err)
	}
	if after, _ := st.Count(ctx, inventory.CertFilter{}); after != before {
		t.Errorf("refusal added %d rows", after-before)
	}
	denied, err := st.Events(ctx, inventory.EventFilter{Action: "cert.issue"})
	if err != nil || len(denied) == 0 || denied[0].Outcome != "denied" {
		t.Errorf("latest cert.issue event = %+v, %v; want denied", denied, err)
	}

	if _, err := c.Revoke(ctx, RevokeRequest{Serial: colonUpper(iss.Record.Serial), Reason: "superseded", Actor: "acceptance", Protocol: "api"}); err != nil {
		t.Fatalf("Revoke = %v", err)
	}
	if _, err := c.Revoke(ctx, RevokeRequest{Serial: iss.Record.Serial}); !errors.Is(err, ErrAlreadyRevoked) {
		t.Errorf("second Revoke = %v, want ErrAlreadyRevoked", err)
	}
	if _, err := c.Revoke(ctx, RevokeRequest{Serial: "0badc0de"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revoke(unknown) = %v, want ErrNotFound", err)
	}
	if n, err := st.VerifyEvents(ctx); err != nil || n < 5 {
		t.Errorf("VerifyEvents = %d, %v", n, err)
	}
	if _, err := c.ServerCertificate(ctx, []string{"mica.a.test"}); err != nil {
		t.Errorf("ServerCertificate = %v", err)
	}
}

// TestAcceptanceSoftKMS runs Init, New, Issue and Revoke on softkms and
// every available store (SQLite always, PostgreSQL when configured).
func TestAcceptanceSoftKMS(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			keys := softKMS(t)
			c, res := realEnv(t, st, keys, nil, false, hsm.ECP256)
			if res.RootIssuer.KeyURI == "" {
				t.Errorf("online root has no key URI")
			}
			exercise(t, c, st)
		})
		t.Run(name+"/offline-root", func(t *testing.T) {
			st := inventorytest.SQLite(t)
			if name != "sqlite" {
				st = inventorytest.Postgres(t)
			}
			keys, rootKeys := softKMS(t), softKMS(t)
			c, res := realEnv(t, st, keys, rootKeys, true, hsm.ECP384)
			got, err := st.Issuer(context.Background(), res.RootIssuer.ID)
			if err != nil || got.KeyURI != "" || !got.IsRoot {
				t.Errorf("stored root = %+v, %v; want a root with no key URI", got, err)
			}
			if res.RootKeyURI == "" {
				t.Errorf("InitResult does not say where the root key is")
			}
			if _, err := rootKeys.PublicKey(context.Background(), res.RootKeyURI); err != nil {
				t.Errorf("root key not in the root backend: %v", err)
			}
			exercise(t, c, st)
		})
	}
}

// TestAcceptanceSoftHSM puts root and issuing keys on a SoftHSM2 token.
// Not parallel: SOFTHSM2_CONF is process-wide.
func TestAcceptanceSoftHSM(t *testing.T) {
	if testing.Short() {
		t.Skip("SoftHSM acceptance test skipped in -short mode")
	}
	for _, tc := range []struct {
		name    string
		kt      hsm.KeyType
		offline bool
	}{
		{"EC-P256", hsm.ECP256, false},
		{"RSA-2048-offline-root", hsm.RSA2048, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uri, pin := hsmtest.SoftHSM(t)
			keys := openBackend(t, uri, pin)
			st := inventorytest.SQLite(t)
			c, res := realEnv(t, st, keys, nil, tc.offline, tc.kt)
			for _, u := range []string{res.RootKeyURI, res.IssuingKeyURI} {
				p, err := keys.Protection(context.Background(), u)
				if err != nil || !p.OnToken || !p.Sensitive || p.Extractable {
					t.Errorf("Protection(%s) = %+v, %v; want on-token, sensitive, not extractable", redactURI(u), p, err)
				}
			}
			stored, _ := st.Issuer(context.Background(), res.RootIssuer.ID)
			if tc.offline != (stored.KeyURI == "") {
				t.Errorf("root KeyURI %q with offline=%t", stored.KeyURI, tc.offline)
			}
			exercise(t, c, st)
		})
	}
}

// TestConcurrentIssue: 50 goroutines issue at once against a real store
// (SQLite, and PostgreSQL when configured); every serial differs and every
// certificate is issued.
func TestConcurrentIssue(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			concurrentIssue(t, st)
		})
	}
}

func concurrentIssue(t *testing.T, st *inventory.Store) {
	c, _ := realEnv(t, st, softKMS(t), nil, false, hsm.ECP256)
	const n = 50
	csr := makeCSR(t, subjectKey(t, "EC-P256"), "a.test")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		serials = map[string]bool{}
		errs    []error
	)
	for range n {
		wg.Go(func() {
			iss, err := c.Issue(context.Background(), Request{CSR: csr, Profile: "server", Protocol: "api"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			serials[iss.Record.Serial] = true
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d issuances failed, first: %v", len(errs), n, errs[0])
	}
	if len(serials) != n {
		t.Errorf("%d distinct serials, want %d", len(serials), n)
	}
	got, err := st.Count(context.Background(), inventory.CertFilter{States: []inventory.State{inventory.StateIssued}})
	if err != nil || got != n {
		t.Errorf("Count(issued) = %d, %v; want %d", got, err, n)
	}
}
