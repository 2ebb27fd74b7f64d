package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme/acmetest"
)

// TestServeRefusesLoopbackDevAllows runs the real binary twice over one
// CA, with the same flags: `mica serve` refuses to validate http-01 for a
// name that resolves to 127.0.0.1 (rejectedIdentifier, no address in the
// problem), `mica dev` validates it, as the ACME client tests on loopback
// need.
func TestServeRefusesLoopbackDevAllows(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t)
	cfgPath := filepath.Join(c.dir, "mica.yaml")
	yaml, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, []byte(strings.Replace(string(yaml), "format: text", "format: json", 1)), 0o640)

	dns := acmetest.NewDNS(t) // every name is A 127.0.0.1
	var tokens sync.Map
	h01 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := tokens.Load(strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/")); ok {
			fmt.Fprint(w, v)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(h01.Close)
	flags := []string{"--http01-port", strings.TrimPrefix(h01.URL, "http://127.0.0.1:"), "--dns-resolver", dns.Addr}
	root := readCerts(t, filepath.Join(c.dir, rootPEM))[0]

	srv := startReplica(t, c.dir, flags...)
	err := validateHTTP01(t, srv.https+"acme/default/directory", root, &tokens, "serve.test")
	var pe *xacme.Error
	if !errors.As(err, &pe) || !strings.HasSuffix(pe.ProblemType, ":rejectedIdentifier") {
		t.Fatalf("mica serve: http-01 for a name on 127.0.0.1 = %v, want rejectedIdentifier", err)
	}
	if strings.Contains(pe.Detail, "127.0.0.1") || !strings.Contains(pe.Detail, "network the CA may not connect to") {
		t.Errorf("mica serve: problem detail %q, want the denied network named, not the address", pe.Detail)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.done:
	case <-time.After(30 * time.Second):
		t.Fatal("mica serve did not stop within 30s of SIGINT")
	}

	d := startDev(t, c.dir, flags...)
	dir := reDirectory.FindString(d.stdout)
	if dir == "" {
		t.Fatalf("no ACME directory in the banner:\n%s", d.stdout)
	}
	if err := validateHTTP01(t, dir, root, &tokens, "dev.test"); err != nil {
		t.Fatalf("mica dev: http-01 for a name on 127.0.0.1 = %v, want valid\nstderr:\n%s", err, d.stderr)
	}
}

// validateHTTP01 registers an account at dir, orders name, answers its
// http-01 challenge through tokens and returns the authorization's error.
func validateHTTP01(t *testing.T, dir string, root *x509.Certificate, tokens *sync.Map, name string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := x509.NewCertPool()
	pool.AddCert(root)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cl := &xacme.Client{Key: key, DirectoryURL: dir,
		HTTPClient: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	if _, err := cl.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatalf("Register at %s: %v", dir, err)
	}
	o, err := cl.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: name}})
	if err != nil {
		t.Fatal(err)
	}
	z, err := cl.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range z.Challenges {
		if ch.Type != "http-01" {
			continue
		}
		ka, _ := cl.HTTP01ChallengeResponse(ch.Token)
		tokens.Store(ch.Token, ka)
		if _, err := cl.Accept(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	_, err = cl.WaitAuthorization(ctx, o.AuthzURLs[0])
	var ae *xacme.AuthorizationError
	if errors.As(err, &ae) && len(ae.Errors) > 0 {
		return ae.Errors[0]
	}
	return err
}
