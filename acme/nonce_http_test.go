package acme_test

import (
	"net/http"
	"testing"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestNewNonceWritesNothing: through the real router, nonces handed out
// by new-nonce (HEAD and GET) and on error responses make no store call;
// the one signed request that uses a nonce makes one.
func TestNewNonceWritesNothing(t *testing.T) {
	t.Parallel()
	st := inventorytest.SQLite(t)
	counting, calls := acme.NewCountingStore(st)
	e := newEnv(t, st, func(o *acme.Options) { o.Store = counting })
	keys0, _ := calls()
	seen := map[string]bool{}
	for i := range 40 {
		m := []string{http.MethodHead, http.MethodGet}[i%2]
		path := []string{"/acme/default/new-nonce", "/acme/default/no-such-thing"}[i/20]
		req, _ := http.NewRequest(m, e.srv.URL+path, nil)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		n := resp.Header.Get("Replay-Nonce")
		if n == "" || seen[n] {
			t.Fatalf("%s %s: Replay-Nonce %q (empty or repeated)", m, path, n)
		}
		seen[n] = true
	}
	if keys, uses := calls(); keys != keys0 || uses != 0 {
		t.Fatalf("handing out 40 nonces made %d key and %d use store calls, want none", keys-keys0, uses)
	}
	resp, body := e.send(t, rawReq{url: e.srv.URL + "/acme/default/new-account", nonce: e.nonce(t), key: newKey(t),
		payload: map[string]any{"termsOfServiceAgreed": true}})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("new-account: %d %s", resp.StatusCode, body)
	}
	if _, uses := calls(); uses != 1 {
		t.Fatalf("one signed request made %d nonce redemptions in the store, want 1", uses)
	}
}
