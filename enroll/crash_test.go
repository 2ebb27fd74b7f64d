package enroll_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestTokenNotBurntByCrash: an enrollment killed after its one-time token
// was consumed and before any certificate was committed leaves the token
// spent. The device's retry is refused until the recovery pass hands the
// token back; then the same credential enrolls over HTTPS, once.
func TestTokenNotBurntByCrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, newBase(t, inventorytest.SQLite(t)), nil)
	user, pass := e.token("default")
	der, _ := csr(t, "crash-device")

	// The crashed request: the token's consumption committed, nothing
	// after it (exactly what the EST server's authentication commits).
	sum := sha256.Sum256([]byte(pass))
	if _, err := e.store.UseESTToken(ctx, user, "default", hex.EncodeToString(sum[:]), "192.0.2.7", time.Now()); err != nil {
		t.Fatal(err)
	}
	if res := post(t, e.client(nil), e.url("/simpleenroll"), user, pass, b64(der), nil); res.code != 401 {
		t.Fatalf("retry before recovery = %d %s, want 401 (the token is spent)", res.code, res.body)
	}

	r, err := e.store.Recover(ctx, inventory.RecoverOptions{Now: time.Now().Add(3 * time.Minute),
		StaleAfter: 40 * time.Second, TokenStaleAfter: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if r.ReleasedTokens != 1 {
		t.Fatalf("recovery released %d tokens, want 1", r.ReleasedTokens)
	}
	if res := post(t, e.client(nil), e.url("/simpleenroll"), user, pass, b64(der), nil); res.code != 200 {
		t.Fatalf("retry after recovery = %d %s, want 200", res.code, res.body)
	}
	// Now it paid for a certificate: spent for good, recovery or not.
	if r, err := e.store.Recover(ctx, inventory.RecoverOptions{Now: time.Now().Add(3 * time.Minute),
		StaleAfter: 40 * time.Second, TokenStaleAfter: 2 * time.Minute}); err != nil || r.ReleasedTokens != 0 {
		t.Fatalf("second recovery = %+v, %v; want nothing released", r, err)
	}
	if res := post(t, e.client(nil), e.url("/simpleenroll"), user, pass, b64(der), nil); res.code != 401 {
		t.Fatalf("third use = %d, want 401", res.code)
	}
}
