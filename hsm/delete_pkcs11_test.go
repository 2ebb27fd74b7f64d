//go:build cgo

package hsm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mica-pki/mica/hsm"
)

// TestPKCS11DeleteKey: after DeleteKey, pkcs11-tool (an independent reader)
// no longer lists the private key, the backend cannot sign with it, and a
// neighbouring key is untouched.
func TestPKCS11DeleteKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := openP11(t)
	keepName, doomedName := uniq("keep"), uniq("doomed")
	keep, err := b.CreateKey(ctx, keepName, hsm.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	doomed, err := b.CreateKey(ctx, doomedName, hsm.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := privateKeyAccess(pkcs11Tool(t, "--list-objects", "--type", "privkey"), doomedName); !ok {
		t.Fatalf("pkcs11-tool does not list %s before deletion", doomedName)
	}
	if err := b.DeleteKey(ctx, doomed); err != nil {
		t.Fatalf("DeleteKey(%s) = %v", doomed, err)
	}
	listing := pkcs11Tool(t, "--list-objects", "--type", "privkey")
	if _, ok := privateKeyAccess(listing, doomedName); ok {
		t.Errorf("pkcs11-tool still lists private key %s:\n%s", doomedName, listing)
	}
	if _, ok := privateKeyAccess(listing, keepName); !ok {
		t.Errorf("pkcs11-tool lost the neighbouring key %s:\n%s", keepName, listing)
	}
	if _, err := b.Signer(ctx, doomed); !errors.Is(err, hsm.ErrNotFound) {
		t.Errorf("Signer after delete = %v, want ErrNotFound", err)
	}
	if err := b.DeleteKey(ctx, doomed); !errors.Is(err, hsm.ErrNotFound) {
		t.Errorf("second DeleteKey = %v, want ErrNotFound", err)
	}
	s, err := b.Signer(ctx, keep)
	if err != nil {
		t.Fatal(err)
	}
	signVerify(t, s)
}
