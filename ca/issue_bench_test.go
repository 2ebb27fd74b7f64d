package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"testing"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// Benchmarks compare a whole issuance (check, build, lint, reserve, HSM
// sign, verify, commit on SQLite) with one raw signature by the same
// issuing key, per backend, so the overhead of everything but the
// signature is visible:
//
//	go test -run '^$' -bench . -benchtime 3s ./ca/

// benchBackends names the backends; softhsm is skipped when SoftHSM2 is
// missing.
var benchBackends = []string{"softkms-P256", "softhsm-P256"}

// benchCA makes a CA with an EC-P256 issuing key on the named backend and a
// SQLite store in b.TempDir.
func benchCA(b *testing.B, backend string) (*CA, hsm.Backend, *inventory.Store) {
	b.Helper()
	var keys hsm.Backend
	switch backend {
	case "softkms-P256":
		keys = softKMS(b)
	case "softhsm-P256":
		if err := hsmtest.Available(); err != nil {
			b.Skip(err)
		}
		uri, pin := hsmtest.SoftHSM(b)
		keys = openBackend(b, uri, pin)
	}
	st := inventorytest.SQLite(b)
	c, _ := realEnv(b, st, keys, nil, false, hsm.ECP256)
	return c, keys, st
}

func BenchmarkIssue(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend, func(b *testing.B) {
			c, _, _ := benchCA(b, backend)
			csr := makeCSR(b, subjectKey(b, "EC-P256"), "www.a.test", "a.test")
			ctx := context.Background()
			for b.Loop() {
				if _, err := c.Issue(ctx, Request{CSR: csr, Profile: "server", Protocol: "api"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRawSign(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend, func(b *testing.B) {
			c, keys, _ := benchCA(b, backend)
			signer, err := keys.Signer(context.Background(), c.cur().issuer.KeyURI)
			if err != nil {
				b.Fatal(err)
			}
			digest := sha256.Sum256([]byte("tbsCertificate stand-in"))
			for b.Loop() {
				if _, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIssueSteps times the steps that do not touch the HSM.
func BenchmarkIssueSteps(b *testing.B) {
	c, _, st := benchCA(b, "softkms-P256")
	csr := makeCSR(b, subjectKey(b, "EC-P256"), "www.a.test", "a.test")
	pol := c.profiles["server"]
	req := Request{CSR: csr, Profile: "server"}
	chk, err := check(req, pol, c.cur().issuerCert, c.now())
	if err != nil {
		b.Fatal(err)
	}
	build := func() *x509.Certificate {
		sn, _ := newSerial()
		tmpl, err := buildLeaf(chk, leafParams{serial: sn, issuer: c.cur().issuerCert, sigAlg: c.cur().sigAlg, urls: urlsFor(c.urls, c.cur().issuer.ID, true), profile: pol})
		if err != nil {
			b.Fatal(err)
		}
		return tmpl
	}

	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			if _, err := check(req, pol, c.cur().issuerCert, c.now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			build()
		}
	})
	b.Run("lint", func(b *testing.B) {
		tmpl := build()
		for b.Loop() {
			if _, _, err := c.cur().lintIssuer.lint("certificate", tmpl); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store-reserve+complete", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			b.StopTimer()
			tmpl := build()
			der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cur().lintIssuer.cert, tmpl.PublicKey, c.cur().lintIssuer.key)
			if err != nil {
				b.Fatal(err)
			}
			rec := c.record(c.cur(), chk, req, pol, serialHex(tmpl.SerialNumber), tmpl)
			b.StartTimer()
			if err := st.ReserveCertificate(ctx, rec); err != nil {
				b.Fatal(err)
			}
			if err := st.CompleteCertificate(ctx, c.cur().issuer.ID, rec.Serial, der, "", inventory.Event{Action: "cert.issue"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
