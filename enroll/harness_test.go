package enroll_test

// The in-process harness: a real CA (software keys, SQLite), the EST server
// on an httptest TLS listener that asks for (but does not verify) client
// certificates, as server.Server does when a label trusts extra roots.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

type testEnv struct {
	t       testing.TB
	store   *inventory.Store
	ca      *ca.CA
	srv     *httptest.Server
	dir     string
	rootPEM string       // path
	offset  atomic.Int64 // clock offset in seconds for the EST server
}

func defaultConfig() enroll.Config {
	return enroll.Config{
		Default: "default",
		Labels: map[string]enroll.Label{
			"default":  {Profile: "device", Tokens: true, ClientCerts: true, ServerKeyGen: &enroll.PoolConfig{KeyType: "EC-P256", Size: 10}},
			"held":     {Profile: "device", Tokens: true, Approval: true},
			"certonly": {Profile: "device", ClientCerts: true},
		},
	}
}

// base is what tests share: one store, one CA. Building a CA (key
// generation, zlint) is the slow part of a test under -race, so each
// store gets one and every test runs its own EST server over it.
type base struct {
	store *inventory.Store
	ca    *ca.CA
	keys  hsm.Backend
}

func newBase(t testing.TB, st *inventory.Store) *base {
	t.Helper()
	ctx := context.Background()
	uri, pass := hsmtest.SoftKMS(t)
	keys, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: pass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	if _, err := ca.Init(ctx, ca.InitOptions{Store: st, Keys: keys, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(ctx, ca.Options{Store: st, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return &base{store: st, ca: c, keys: keys}
}

// newEnv starts an EST server with defaultConfig (adjusted by edit) over b.
func newEnv(t testing.TB, b *base, edit func(*enroll.Config)) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &testEnv{t: t, store: b.store, ca: b.ca, dir: t.TempDir()}
	keys := b.keys
	st := b.store
	var err error
	cfg := defaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	est, err := enroll.New(ctx, enroll.Options{CA: e.ca, Store: st, Keys: keys, Config: cfg, Profiles: e.ca.ProfileNames(),
		Now: func() time.Time { return time.Now().Add(time.Duration(e.offset.Load()) * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	est.Mount(r, chi.NewRouter())
	cert, err := e.ca.ServerCertificate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(r)
	e.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert}
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.rootPEM = filepath.Join(e.dir, "root.pem")
	e.write("root.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.ca.Root().Raw}))
	return e
}

func (e *testEnv) write(name string, data []byte) string {
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *testEnv) url(path string) string { return e.srv.URL + "/.well-known/est" + path }

// token stores a one-time token and returns USER, PASSWORD.
func (e *testEnv) token(label string, names ...string) (string, string) {
	e.t.Helper()
	tok, cred, err := enroll.NewToken(label, time.Hour, names, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateESTToken(context.Background(), tok, inventory.Event{Actor: "test", Protocol: "cli"}); err != nil {
		e.t.Fatal(err)
	}
	return tok.ID, cred[len(tok.ID)+1:]
}

// client is an HTTPS client trusting the root, optionally presenting cert.
func (e *testEnv) client(cert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Root())
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

// csr makes a P-256 CSR for cn with dns names.
func csr(t testing.TB, cn string, dns ...string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}, k)
	if err != nil {
		t.Fatal(err)
	}
	return der, k
}

// TestEST runs every EST test over one CA per store: all of them on
// SQLite, the ones whose store code differs on PostgreSQL too.
func TestEST(t *testing.T) {
	tests := []struct {
		name     string
		fn       func(*testing.T, *base)
		postgres bool
	}{
		{"curl-openssl", testCurlOpenSSL, false},
		{"estclient", testEstclient, false},
		{"refusals", testRefusals, true},
		{"proxy-header", testProxyHeader, false},
		{"rate-limit", testRateLimit, true},
		{"approval", testApproval, true},
		{"key-pool", testKeyPool, true},
		{"tls-unique", testTLSUnique, false},
		{"idevid", testIDevID, false},
		{"serverkeygen-encrypted", testServerKeygenEncrypted, false},
		{"identity-binding", testIdentityBinding, false},
		{"label-rules", testLabelRules, true},
		{"content-types", testContentTypes, false},
		{"header-spelling", testHeaderSpelling, false},
		{"serverkeygen-libest", testServerKeygenLibest, false},
	}
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBase(t, st)
			for _, tc := range tests {
				if name != "sqlite" && !tc.postgres {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, b)
				})
			}
		})
	}
}
