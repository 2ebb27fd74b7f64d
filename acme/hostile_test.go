package acme_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestHostileRequests sends malformed and hostile requests; each must get
// the right problem type and status, and none may change state.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	e := newEnv(t, inventorytest.SQLite(t), func(o *acme.Options) { o.MaxBodyBytes = 8 << 10 })
	alice, bob := e.client(ctx), e.client(ctx)
	aliceURL, bobURL := accountURL(ctx, t, alice), accountURL(ctx, t, bob)
	base := e.srv.URL + "/acme/default/"
	orderURL, err := e.postOrder(ctx, alice, map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "h.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	o, err := alice.GetOrder(ctx, orderURL)
	if err != nil {
		t.Fatal(err)
	}
	ready := e.solve(ctx, alice, o, "http-01")
	used := e.nonce(t)
	if resp, body := e.send(t, rawReq{url: orderURL, kid: aliceURL, nonce: used, key: alice.Key}); resp.StatusCode != 200 {
		t.Fatalf("POST-as-GET order: %d %s", resp.StatusCode, body)
	}

	ids := func(vs ...string) map[string]any {
		var l []map[string]string
		for _, v := range vs {
			typ, val, _ := strings.Cut(v, ":")
			l = append(l, map[string]string{"type": typ, "value": val})
		}
		return map[string]any{"identifiers": l}
	}
	type tc struct {
		name   string
		req    rawReq
		typ    string
		status int
	}
	fresh := func() string { return e.nonce(t) }
	cases := []tc{
		{"replayed nonce", rawReq{url: orderURL, kid: aliceURL, nonce: used, key: alice.Key}, "badNonce", 400},
		{"made-up nonce", rawReq{url: orderURL, kid: aliceURL, nonce: "bm9uY2U", key: alice.Key}, "badNonce", 400},
		{"no nonce", rawReq{url: orderURL, kid: aliceURL, key: alice.Key, hdr: map[string]any{"nonce": nil}}, "badNonce", 400},
		{"wrong url header", rawReq{url: orderURL, kid: aliceURL, nonce: fresh(), key: alice.Key, hdr: map[string]any{"url": base + "new-order"}}, "unauthorized", 403},
		{"kid of another account", rawReq{url: orderURL, kid: bobURL, nonce: fresh(), key: alice.Key}, "malformed", 400},
		{"another account's order", rawReq{url: orderURL, kid: bobURL, nonce: fresh(), key: bob.Key}, "malformed", 404},
		{"another account's finalize", rawReq{url: ready.FinalizeURL, kid: bobURL, nonce: fresh(), key: bob.Key,
			payload: map[string]string{"csr": b64(csr(t, newKey(t), "h.test"))}}, "malformed", 404},
		{"another account's authorization", rawReq{url: o.AuthzURLs[0], kid: bobURL, nonce: fresh(), key: bob.Key}, "malformed", 404},
		{"another account's URL", rawReq{url: aliceURL, kid: bobURL, nonce: fresh(), key: bob.Key}, "unauthorized", 403},
		{"unknown kid", rawReq{url: orderURL, kid: base + "acct/nobody", nonce: fresh(), key: alice.Key}, "accountDoesNotExist", 400},
		{"foreign kid", rawReq{url: orderURL, kid: "https://evil.test/acct/1", nonce: fresh(), key: alice.Key}, "accountDoesNotExist", 400},
		{"alg none", rawReq{url: orderURL, kid: aliceURL, nonce: fresh(), key: alice.Key, alg: "none"}, "badSignatureAlgorithm", 400},
		{"alg HS256", rawReq{url: orderURL, kid: aliceURL, nonce: fresh(), key: alice.Key, alg: "HS256"}, "badSignatureAlgorithm", 400},
		{"bad signature", rawReq{url: orderURL, kid: aliceURL, nonce: fresh(), key: alice.Key, jws: func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"signature":"`), []byte(`"signature":"AAAA`), 1)
		}}, "malformed", 400},
		{"jwk and kid", rawReq{url: orderURL, kid: aliceURL, nonce: fresh(), key: alice.Key, hdr: map[string]any{"jwk": map[string]string{"kty": "EC"}}}, "malformed", 400},
		{"jwk on a kid resource", rawReq{url: base + "new-order", nonce: fresh(), key: alice.Key, payload: ids("dns:x.test")}, "malformed", 400},
		{"kid on newAccount", rawReq{url: base + "new-account", kid: aliceURL, nonce: fresh(), key: alice.Key, payload: map[string]any{}}, "malformed", 400},
		{"oversized body", rawReq{url: base + "new-order", kid: aliceURL, nonce: fresh(), key: alice.Key,
			payload: map[string]any{"identifiers": []any{}, "pad": strings.Repeat("x", 9<<10)}}, "malformed", 413},
		{"not JSON", rawReq{url: base + "new-order", body: []byte("hello")}, "malformed", 400},
		{"wrong content type", rawReq{url: base + "new-order", kid: aliceURL, nonce: fresh(), key: alice.Key, contentType: "application/json", payload: ids("dns:x.test")}, "malformed", 415},
		{"unsupported identifier", rawReq{url: base + "new-order", kid: aliceURL, nonce: fresh(), key: alice.Key, payload: ids("email:a@b.test")}, "unsupportedIdentifier", 400},
		{"bad DNS name", rawReq{url: base + "new-order", kid: aliceURL, nonce: fresh(), key: alice.Key, payload: ids("dns:-bad-.test")}, "rejectedIdentifier", 400},
		{"several bad identifiers", rawReq{url: base + "new-order", kid: aliceURL, nonce: fresh(), key: alice.Key, payload: ids("dns:a..test", "ip:300.1.1.1", "dns:ok.test")}, "rejectedIdentifier", 400},
		{"lifetime over the cap", rawReq{url: base + "new-order", kid: aliceURL, nonce: fresh(), key: alice.Key,
			payload: map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "x.test"}}, "notAfter": "2099-01-01T00:00:00Z"}}, "malformed", 400},
		{"unknown profile", rawReq{url: base + "new-order", kid: aliceURL, nonce: fresh(), key: alice.Key,
			payload: map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "x.test"}}, "profile": "device"}}, "invalidProfile", 400},
		{"CSR names not in the order", rawReq{url: ready.FinalizeURL, kid: aliceURL, nonce: fresh(), key: alice.Key,
			payload: map[string]string{"csr": b64(csr(t, newKey(t), "h.test", "evil.test"))}}, "badCSR", 400},
		{"CSR garbage", rawReq{url: ready.FinalizeURL, kid: aliceURL, nonce: fresh(), key: alice.Key, payload: map[string]string{"csr": "AAAA"}}, "badCSR", 400},
		{"onlyReturnExisting, no account", rawReq{url: base + "new-account", nonce: fresh(), key: newKey(t), payload: map[string]any{"onlyReturnExisting": true}}, "accountDoesNotExist", 400},
		{"bad contact", rawReq{url: base + "new-account", nonce: fresh(), key: newKey(t), payload: map[string]any{"contact": []string{"tel:+1555"}}}, "unsupportedContact", 400},
		{"revoke a certificate that is not ours", rawReq{url: base + "revoke-cert", kid: aliceURL, nonce: fresh(), key: alice.Key,
			payload: map[string]string{"certificate": b64(e.srv.Certificate().Raw)}}, "malformed", 404},
	}
	for _, c := range cases {
		resp, body := e.send(t, c.req)
		var p struct {
			Type        string
			Status      int
			Subproblems []json.RawMessage
			Algorithms  []string
		}
		_ = json.Unmarshal(body, &p)
		if p.Type != "urn:ietf:params:acme:error:"+c.typ || resp.StatusCode != c.status || p.Status != c.status {
			t.Errorf("%s: got %s (%d) %s, want %s (%d)", c.name, p.Type, resp.StatusCode, body, c.typ, c.status)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
		if resp.Header.Get("Replay-Nonce") == "" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: error response lacks Replay-Nonce or Cache-Control: no-store", c.name)
		}
		switch c.name {
		case "several bad identifiers":
			if len(p.Subproblems) != 2 {
				t.Errorf("%s: %d subproblems, want 2: %s", c.name, len(p.Subproblems), body)
			}
		case "alg none":
			if len(p.Algorithms) == 0 {
				t.Errorf("%s: no algorithms listed", c.name)
			}
		}
	}

	// Nothing above moved the order: it is still ready and can be finalized.
	after, err := alice.GetOrder(ctx, orderURL)
	if err != nil || after.Status != xacme.StatusReady {
		t.Fatalf("order after hostile requests = %+v, %v; want ready", after, err)
	}
	if _, _, err := alice.CreateOrderCert(ctx, after.FinalizeURL, csr(t, newKey(t), "h.test"), false); err != nil {
		t.Fatalf("CreateOrderCert after hostile requests: %v", err)
	}
}

// TestNonceFromAnyReplica: two servers on one database accept each
// other's nonces, exactly once.
func TestNonceFromAnyReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := inventorytest.SQLite(t)
	a := newEnv(t, st, nil)
	key := newKey(t)
	n := a.nonce(t)
	// The second replica shares the store (and, here, the CA).
	b := newEnvOnCA(t, a)
	url := b.srv.URL + "/acme/default/new-account"
	resp, body := b.send(t, rawReq{url: url, nonce: n, key: key, payload: map[string]any{"termsOfServiceAgreed": true}})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("replica B refused replica A's nonce: %d %s", resp.StatusCode, body)
	}
	// The replay goes to the other replicas, not the one that consumed
	// it: A, which issued the nonce, and C, which never saw it. A replay
	// cache kept in one replica's memory would pass a same-replica replay
	// and accept these.
	c := newEnvOnCA(t, a)
	for _, r := range []*testEnv{a, c} {
		url := r.srv.URL + "/acme/default/new-account"
		resp, body = r.send(t, rawReq{url: url, nonce: n, key: key, payload: map[string]any{}})
		if err := problemOf(resp, body); err == nil || !strings.Contains(err.Error(), "badNonce") {
			t.Fatalf("replay at %s of a nonce consumed at %s = %d %v, want badNonce", r.srv.URL, b.srv.URL, resp.StatusCode, err)
		}
	}
	// Each replica still accepts a fresh nonce for the same request, so
	// the refusals above are about the nonce, not the request.
	for _, r := range []*testEnv{a, c} {
		url := r.srv.URL + "/acme/default/new-account"
		if resp, body := r.send(t, rawReq{url: url, nonce: r.nonce(t), key: key, payload: map[string]any{}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("fresh nonce at %s: %d %s", r.srv.URL, resp.StatusCode, body)
		}
	}
	_ = ctx
}
