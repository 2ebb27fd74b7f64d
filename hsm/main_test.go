package hsm_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/mica-pki/mica/internal/testtool"
)

var keySeq atomic.Int64

// uniq makes key names unique, also on the SoftHSM2 token all pkcs11 tests
// of this binary share.
func uniq(prefix string) string { return fmt.Sprintf("%s-%d", prefix, keySeq.Add(1)) }

// TestMain creates the SoftHSM2 token shared by this binary's pkcs11 tests
// (setupSoftHSM is a no-op without cgo) before any PKCS#11 call, because
// SoftHSM2 reads SOFTHSM2_CONF only when the module is initialised.
func TestMain(m *testing.M) {
	cleanup := setupSoftHSM()
	code := m.Run()
	fmt.Fprint(os.Stderr, testtool.Summary())
	cleanup()
	os.Exit(code)
}

// signVerify signs with every scheme s's key type supports and verifies
// each signature with the standard library against s.Public().
func signVerify(t testing.TB, s crypto.Signer) {
	t.Helper()
	msg := []byte("MICA test message")
	switch pub := s.Public().(type) {
	case *ecdsa.PublicKey:
		h := crypto.SHA256
		if pub.Curve == elliptic.P384() {
			h = crypto.SHA384
		}
		hh := h.New()
		hh.Write(msg)
		d := hh.Sum(nil)
		sig, err := s.Sign(rand.Reader, d, h)
		if err != nil {
			t.Fatalf("ECDSA sign: %v", err)
		}
		if !ecdsa.VerifyASN1(pub, d, sig) {
			t.Fatalf("ECDSA %s signature does not verify", pub.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		d := sha256.Sum256(msg)
		sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("RSA PKCS#1 v1.5 sign: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
			t.Fatalf("RSA PKCS#1 v1.5 verify: %v", err)
		}
		pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		sig, err = s.Sign(rand.Reader, d[:], pss)
		if err != nil {
			t.Fatalf("RSA-PSS sign: %v", err)
		}
		if err := rsa.VerifyPSS(pub, crypto.SHA256, d[:], sig, pss); err != nil {
			t.Fatalf("RSA-PSS verify: %v", err)
		}
	case ed25519.PublicKey:
		sig, err := s.Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil {
			t.Fatalf("Ed25519 sign: %v", err)
		}
		if !ed25519.Verify(pub, msg, sig) {
			t.Fatal("Ed25519 signature does not verify")
		}
		d := sha512.Sum512(msg)
		sig, err = s.Sign(rand.Reader, d[:], &ed25519.Options{Hash: crypto.SHA512})
		if err != nil {
			t.Fatalf("Ed25519ph sign: %v", err)
		}
		if err := ed25519.VerifyWithOptions(pub, d[:], sig, &ed25519.Options{Hash: crypto.SHA512}); err != nil {
			t.Fatalf("Ed25519ph verify: %v", err)
		}
	default:
		t.Fatalf("unexpected public key %T", pub)
	}
}

// digestFor returns a digest and opts suitable for s's key, for hot loops.
func digestFor(s crypto.Signer) ([]byte, crypto.SignerOpts) {
	msg := []byte("MICA benchmark")
	switch pub := s.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve == elliptic.P384() {
			d := sha512.Sum384(msg)
			return d[:], crypto.SHA384
		}
	case ed25519.PublicKey:
		return msg, crypto.Hash(0)
	}
	d := sha256.Sum256(msg)
	return d[:], crypto.SHA256
}

// verify checks one signature made over digestFor's output.
func verify(s crypto.Signer, d []byte, opts crypto.SignerOpts, sig []byte) error {
	switch pub := s.Public().(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, d, sig) {
			return fmt.Errorf("ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, opts.HashFunc(), d, sig)
	case ed25519.PublicKey:
		if !ed25519.Verify(pub, d, sig) {
			return fmt.Errorf("Ed25519 signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unexpected key %T", s.Public())
}
