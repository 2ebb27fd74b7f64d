package acme_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"testing"

	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestShortRSAAccountKeyRefused: an account key is checked before it is
// trusted: a validly signed RS256 new-account request with a 1024-bit RSA
// key is refused with badPublicKey, while the same request with a
// 2048-bit key creates the account (so the refusal is about the size).
func TestShortRSAAccountKeyRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, inventorytest.SQLite(t), nil)
	url := e.srv.URL + "/acme/default/new-account"
	for _, tc := range []struct {
		bits int
		want int
	}{{1024, http.StatusBadRequest}, {2048, http.StatusCreated}} {
		key, err := rsa.GenerateKey(rand.Reader, tc.bits)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := e.send(t, rawReq{url: url, nonce: e.nonce(t), key: key, alg: "RS256", payload: map[string]any{"termsOfServiceAgreed": true}})
		if resp.StatusCode != tc.want {
			t.Fatalf("new-account with a %d-bit RSA key = %d %s, want %d", tc.bits, resp.StatusCode, body, tc.want)
		}
		if tc.want == http.StatusBadRequest && !strings.Contains(string(body), "badPublicKey") {
			t.Errorf("%d-bit RSA key refused with %s, want badPublicKey", tc.bits, body)
		}
	}
}
