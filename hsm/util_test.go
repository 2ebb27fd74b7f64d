package hsm_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"

	"github.com/mica-pki/mica/hsm"
)

func TestParseKeyType(t *testing.T) {
	for in, want := range map[string]hsm.KeyType{
		"EC-P256": hsm.ECP256, "p256": hsm.ECP256, "ec-p384": hsm.ECP384, "P-384": hsm.ECP384,
		"rsa2048": hsm.RSA2048, "RSA-3072": hsm.RSA3072, "rsa_4096": hsm.RSA4096, "ED25519": hsm.Ed25519,
	} {
		got, err := hsm.ParseKeyType(in)
		if err != nil || got != want {
			t.Errorf("ParseKeyType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "p521", "rsa1024", "dsa"} {
		if _, err := hsm.ParseKeyType(in); !errors.Is(err, hsm.ErrUnsupported) {
			t.Errorf("ParseKeyType(%q): want ErrUnsupported, got %v", in, err)
		}
	}
	for _, kt := range hsm.KeyTypes {
		if got, err := hsm.ParseKeyType(string(kt)); err != nil || got != kt {
			t.Errorf("canonical name %q does not round-trip", kt)
		}
	}
}

func TestValidKeyName(t *testing.T) {
	good := []string{"issuing", "root-2026", "ca_1.v2", "A", strings.Repeat("a", 64)}
	bad := []string{"", ".", "..", "../x", "a/b", `a\b`, "a..b", ".hidden", "-flag", "a b", "ä", "a;b", "a%2f", "a\x00b", strings.Repeat("a", 65)}
	for _, n := range good {
		if err := hsm.ValidKeyName(n); err != nil {
			t.Errorf("ValidKeyName(%q) = %v, want nil", n, err)
		}
	}
	for _, n := range bad {
		if err := hsm.ValidKeyName(n); err == nil {
			t.Errorf("ValidKeyName(%q) = nil, want error", n)
		}
	}
}

func TestKeyTypeOf(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	r2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	r1024, _ := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // testing rejection
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		pub  any
		want hsm.KeyType
	}{
		{&p256.PublicKey, hsm.ECP256}, {&p384.PublicKey, hsm.ECP384}, {&r2048.PublicKey, hsm.RSA2048},
		{ed, hsm.Ed25519}, {&p521.PublicKey, ""}, {&r1024.PublicKey, ""}, {"nope", ""},
	}
	for _, tc := range tests {
		got, err := hsm.KeyTypeOf(tc.pub)
		if tc.want == "" {
			if !errors.Is(err, hsm.ErrUnsupported) {
				t.Errorf("KeyTypeOf(%T) = %q, %v; want ErrUnsupported", tc.pub, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("KeyTypeOf(%T) = %q, %v; want %q", tc.pub, got, err, tc.want)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	pin := hsm.NewSecret([]byte("1234"))
	tests := []struct {
		name, uri string
		is        error
	}{
		{"no scheme", "/var/lib/mica/keys", nil},
		{"no scheme, pin pasted", "module-path=/x.so;pin-value=4242", nil},
		{"unknown scheme", "yubikey:slot=9c", hsm.ErrUnsupported},
		{"file scheme", "file:/etc/key.pem", hsm.ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := hsm.Open(context.Background(), hsm.Config{URI: tc.uri, Secret: pin})
			if err == nil {
				b.Close()
				t.Fatal("want error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("want %v, got %v", tc.is, err)
			}
			if strings.Contains(err.Error(), "4242") {
				t.Fatalf("error reveals a PIN: %v", err)
			}
		})
	}
}

func TestProtectionString(t *testing.T) {
	s := hsm.Protection{Backend: "softkms", Encrypted: true}.String()
	if !strings.Contains(s, "not HSM-backed") || !strings.Contains(s, "encrypted") {
		t.Errorf("softkms summary %q", s)
	}
	p := hsm.Protection{Backend: "pkcs11", OnToken: true, Sensitive: true, NeverExtractable: true}.String()
	if !strings.Contains(p, "sensitive=true") || !strings.Contains(p, "extractable=false") {
		t.Errorf("pkcs11 summary %q", p)
	}
}
