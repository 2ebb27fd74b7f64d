package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

var (
	keyCacheMu sync.Mutex
	keyCache   = map[string]crypto.Signer{}
)

// subjectKey returns a key of the named type. RSA keys are cached per size
// because generating them dominates test time; other keys are fresh.
func subjectKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch kind {
	case "EC-P224":
		k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "EC-P256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EC-P384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EC-P521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "Ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "RSA-1024", "RSA-2048", "RSA-3072", "RSA-4096":
		keyCacheMu.Lock()
		defer keyCacheMu.Unlock()
		if c, ok := keyCache[kind]; ok {
			return c
		}
		bits := map[string]int{"RSA-1024": 1024, "RSA-2048": 2048, "RSA-3072": 3072, "RSA-4096": 4096}[kind]
		k, err = rsa.GenerateKey(rand.Reader, bits)
		if err == nil {
			keyCache[kind] = k
		}
	default:
		t.Fatalf("subjectKey(%q): unknown kind", kind)
	}
	if err != nil {
		t.Fatalf("subjectKey(%q): %v", kind, err)
	}
	return k
}

// makeCSR builds a DER CSR for key with common name cn and SANs written as
// "ip:…", "uri:…", "email:…" or a bare DNS name.
func makeCSR(t testing.TB, key crypto.Signer, cn string, names ...string) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "ip:"):
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(n[3:]))
		case strings.HasPrefix(n, "uri:"):
			u, err := url.Parse(n[4:])
			if err != nil {
				t.Fatal(err)
			}
			tmpl.URIs = append(tmpl.URIs, u)
		case strings.HasPrefix(n, "email:"):
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, n[6:])
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}
