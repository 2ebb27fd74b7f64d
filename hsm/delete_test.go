package hsm_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mica-pki/mica/hsm"
)

// TestSoftDeleteKey: the key file is gone, the signer cache forgot the key,
// and a second delete is ErrNotFound rather than a silent success.
func TestSoftDeleteKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, uri, _ := openSoft(t)
	keep, err := b.CreateKey(ctx, "keep", hsm.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	doomed, err := b.CreateKey(ctx, "doomed", hsm.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Signer(ctx, doomed); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteKey(ctx, doomed); err != nil {
		t.Fatalf("DeleteKey(%s) = %v", doomed, err)
	}
	if _, err := os.Stat(filepath.Join(softDir(t, uri), "doomed.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key file still there: %v", err)
	}
	if _, err := b.Signer(ctx, doomed); !errors.Is(err, hsm.ErrNotFound) {
		t.Errorf("Signer after delete = %v, want ErrNotFound", err)
	}
	if err := b.DeleteKey(ctx, doomed); !errors.Is(err, hsm.ErrNotFound) {
		t.Errorf("second DeleteKey = %v, want ErrNotFound", err)
	}
	if s, err := b.Signer(ctx, keep); err != nil {
		t.Errorf("the other key is gone too: %v", err)
	} else {
		signVerify(t, s)
	}
}
