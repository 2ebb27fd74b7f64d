//go:build !cgo

package hsm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mica-pki/mica/hsm"
)

func setupSoftHSM() func() { return func() {} }

func benchPKCS11(b *testing.B) { b.Skip("pkcs11 needs cgo") }

// TestPKCS11WithoutCgo: a binary built with CGO_ENABLED=0 must refuse a
// pkcs11 configuration loudly, never fall back to software keys.
func TestPKCS11WithoutCgo(t *testing.T) {
	if hsm.PKCS11Supported() {
		t.Fatal("PKCS11Supported() = true without cgo")
	}
	b, err := hsm.Open(context.Background(), hsm.Config{
		URI:    "pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=mica",
		Secret: hsm.NewSecret([]byte("1234")),
	})
	if err == nil {
		b.Close()
		t.Fatal("pkcs11 backend opened without cgo")
	}
	if !errors.Is(err, hsm.ErrUnsupported) || !strings.Contains(err.Error(), "CGO_ENABLED=0") || !strings.Contains(err.Error(), "rebuild with cgo") {
		t.Fatalf("unhelpful error: %v", err)
	}
}

func benchPKCS11Parallel(b *testing.B) { b.Skip("pkcs11 needs cgo") }
