package status_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/mica-pki/mica/ca/revocation"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/internal/testtool"
	"github.com/mica-pki/mica/inventory"
)

// countingKeys is an hsm.Backend whose signers count every signature the
// CA asks the "HSM" for: the cost a flood of OCSP requests could impose.
type countingKeys struct {
	hsm.Backend
	n *atomic.Int64
}

var _ hsm.Backend = countingKeys{}

func (k countingKeys) Signer(ctx context.Context, uri string) (crypto.Signer, error) {
	s, err := k.Backend.Signer(ctx, uri)
	if err != nil {
		return nil, err
	}
	return countingSigner{Signer: s, n: k.n}, nil
}

type countingSigner struct {
	crypto.Signer
	n *atomic.Int64
}

func (s countingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.n.Add(1)
	return s.Signer.Sign(r, digest, opts)
}

type countEnv struct {
	env
	signs *atomic.Int64
}

func newCountEnv(t *testing.T) *countEnv {
	t.Helper()
	n := new(atomic.Int64)
	e := buildEnv(t, func(b hsm.Backend) hsm.Backend { return countingKeys{Backend: b, n: n} })
	return &countEnv{env: *e, signs: n}
}

// stranger is a certificate naming our issuer with a serial it never
// issued: all an attacker needs to build OCSP requests.
func (e *countEnv) stranger(t *testing.T) *x509.Certificate {
	t.Helper()
	c := *e.leaf
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	c.SerialNumber = sn.Add(sn, big.NewInt(1))
	return &c
}

// TestOCSPUnknownSerialUnsigned: over the real router, GET and POST, with
// and without a nonce, SHA-1 and SHA-256 CertIDs, a serial our issuer
// never issued gets the constant unsigned unauthorized response, and the
// HSM signs nothing and the store keeps nothing for it. A known serial
// is still answered (and signed, for a nonce), so the counter is live.
func TestOCSPUnknownSerialUnsigned(t *testing.T) {
	e := newCountEnv(t)
	ctx := context.Background()
	unknown := e.stranger(t)
	type req struct {
		name string
		der  []byte
	}
	var reqs []req
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		der, err := ocsp.CreateRequest(unknown, e.issuing, &ocsp.RequestOptions{Hash: h})
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, req{h.String(), der}, req{h.String() + "+nonce", withNonce(t, der)})
	}
	// And a CertID naming an issuer this CA does not hold.
	fkey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ftmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Someone Else's CA"}, IsCA: true, BasicConstraintsValid: true}
	fder, err := x509.CreateCertificate(rand.Reader, ftmpl, ftmpl, fkey.Public(), fkey)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := x509.ParseCertificate(fder)
	fq, err := ocsp.CreateRequest(e.leaf, foreign, nil)
	if err != nil {
		t.Fatal(err)
	}
	reqs = append(reqs, req{"foreign issuer", fq}, req{"foreign issuer+nonce", withNonce(t, fq)})
	before, stats := e.signs.Load(), e.ca.RevocationStats()
	for _, rq := range reqs {
		for _, hr := range []struct {
			method, path string
			body         []byte
		}{
			{"POST", "/ocsp", rq.der},
			{"GET", "/ocsp/" + base64.StdEncoding.EncodeToString(rq.der), nil},
		} {
			for range 3 {
				w := e.do(hr.method, hr.path, hr.body, "Content-Type", "application/ocsp-request")
				if w.Code != 200 || w.Body.String() != revocation.UnauthorizedResponse {
					t.Fatalf("%s %s: %d %x, want 200 %x", hr.method, rq.name, w.Code, w.Body.Bytes(), revocation.UnauthorizedResponse)
				}
				if cc := w.Header().Get("Cache-Control"); cc != "no-store" || w.Header().Get("ETag") != "" {
					t.Errorf("%s %s: Cache-Control %q ETag %q, want no-store and none", hr.method, rq.name, cc, w.Header().Get("ETag"))
				}
			}
		}
	}
	if n := e.signs.Load() - before; n != 0 {
		t.Errorf("unknown serials cost %d signatures, want 0", n)
	}
	if got := e.ca.RevocationStats(); got != stats {
		t.Errorf("revocation stats moved: %+v -> %+v", stats, got)
	}
	if _, err := e.store.GetOCSPResponse(ctx, e.ca.IssuerID(), unknown.SerialNumber.Text(16)); !errors.Is(err, inventory.ErrNotFound) {
		t.Errorf("a response was stored for the unknown serial: %v", err)
	}

	// Known serials are unchanged: good, from the pre-signed store without
	// a nonce, signed live with one.
	known, _ := ocsp.CreateRequest(e.leaf, e.issuing, &ocsp.RequestOptions{Hash: crypto.SHA1})
	for _, body := range [][]byte{known, withNonce(t, known)} {
		w := e.do("POST", "/ocsp", body, "Content-Type", "application/ocsp-request")
		if resp, err := ocsp.ParseResponseForCert(w.Body.Bytes(), e.leaf, e.issuing); err != nil || resp.Status != ocsp.Good {
			t.Errorf("known serial: %v %v", resp, err)
		}
	}
	if n := e.signs.Load() - before; n != 1 {
		t.Errorf("known serial with a nonce cost %d signatures, want 1", n)
	}
}

// TestOCSPUnknownSerialOpenSSL asks real `openssl ocsp` about a serial the
// CA never issued, over loopback HTTP: it must report the responder's
// unauthorized status, not a (signed) unknown.
func TestOCSPUnknownSerialOpenSSL(t *testing.T) {
	openssl := testtool.Need(t, "openssl")
	e := newCountEnv(t)
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	write := func(name string, c *x509.Certificate) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issuing, root := write("issuing.pem", e.issuing), write("root.pem", e.root)
	before := e.signs.Load()
	for _, nonce := range []string{"-nonce", "-no_nonce"} {
		// -serial names the serial directly: no certificate needed.
		out, _ := exec.Command(openssl, "ocsp", "-issuer", issuing, "-serial", "0x"+e.stranger(t).SerialNumber.Text(16),
			"-url", srv.URL+"/ocsp", "-CAfile", root, nonce).CombinedOutput()
		if !strings.Contains(string(out), "Responder Error: unauthorized (6)") {
			t.Errorf("openssl ocsp %s: %s", nonce, out)
		}
	}
	out, err := exec.Command(openssl, "ocsp", "-issuer", issuing, "-cert", write("leaf.pem", e.leaf),
		"-url", srv.URL+"/ocsp", "-CAfile", root, "-no_nonce").CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": good") {
		t.Errorf("openssl ocsp (known serial): %v\n%s", err, out)
	}
	if n := e.signs.Load() - before; n != 0 {
		t.Errorf("openssl's requests cost %d signatures, want 0", n)
	}
}
