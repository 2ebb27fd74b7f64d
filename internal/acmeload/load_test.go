package acmeload_test

import (
	"context"
	"crypto/x509"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/internal/acmeload"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestRunAgainstMICA drives MICA's real ACME server (software keys,
// SQLite, on an httptest TLS listener) with two load clients for a moment:
// every order goes through the loader's own DNS and http-01 responder, and
// each issued certificate is for the name ordered.
func TestRunAgainstMICA(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := acmeload.StartDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h, err := acmeload.StartHTTP01("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	st := inventorytest.SQLite(t)
	uri, pass := hsmtest.SoftKMS(t)
	keys, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: pass})
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	if _, err := ca.Init(ctx, ca.InitOptions{Store: st, Keys: keys, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(ctx, ca.Options{Store: st, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := acme.New(ctx, acme.Options{CA: c, Store: st, FinalizeWait: 10 * time.Second,
		Validation: acme.ValidationOptions{HTTP01Port: h.Port(), DNSResolver: d.Addr, Timeout: 10 * time.Second,
			AllowNetworks: []string{"127.0.0.0/8"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	srv.Mount(r, nil)
	ts := httptest.NewTLSServer(r)
	defer ts.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())

	opts := &acmeload.Options{Directory: ts.URL + "/acme/default/directory", RootCAs: roots, HTTP01: h, Domain: "load.test"}
	clients, err := acmeload.NewClients(ctx, opts, 2)
	if err != nil {
		t.Fatal(err)
	}
	der, err := clients[0].Order(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.DNSNames) != 1 || !strings.HasSuffix(leaf.DNSNames[0], "-c0.load.test") {
		t.Errorf("certificate names %v, want one oN-c0.load.test", leaf.DNSNames)
	}

	res := acmeload.Run(ctx, clients, 300*time.Millisecond)
	if res.Errors != 0 || len(res.Latencies) < 2 || res.Clients != 2 {
		t.Fatalf("Run = %d orders, %d failed (%s), %d clients; want ≥ 2 orders, none failed",
			len(res.Latencies), res.Errors, res.FirstError, res.Clients)
	}
	if res.Elapsed < 300*time.Millisecond {
		t.Errorf("Run took %v, less than the duration asked", res.Elapsed)
	}
	rec := acmeload.NewRecord("mica", res, 0, 0)
	if rec.OrdersPerS <= 0 || rec.P50ms <= 0 || rec.P99ms < rec.P50ms {
		t.Errorf("record %+v", rec)
	}
}

// TestHTTP01 answers only the tokens set, until deleted.
func TestHTTP01(t *testing.T) {
	h, err := acmeload.StartHTTP01("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	get := func(path string) (int, string) {
		t.Helper()
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, httptest.NewRequest("GET", path, nil))
		return rr.Code, rr.Body.String()
	}
	h.Set("tok", "tok.thumb")
	if code, body := get("/.well-known/acme-challenge/tok"); code != 200 || body != "tok.thumb" {
		t.Errorf("set token: %d %q", code, body)
	}
	if code, _ := get("/tok"); code != 404 {
		t.Errorf("path outside acme-challenge: %d, want 404", code)
	}
	h.Delete("tok")
	if code, _ := get("/.well-known/acme-challenge/tok"); code != 404 {
		t.Errorf("deleted token: %d, want 404", code)
	}
	if h.Port() == 0 {
		t.Error("Port() = 0")
	}
}
