package acme_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/go-jose/go-jose/v4"
	xacme "golang.org/x/crypto/acme"
)

// rawPost signs payload (nil: POST-as-GET) with key for url, with kid or,
// when kid is empty, an embedded jwk. hdr may rewrite the protected header
// before signing; the result is sent as is.
type rawReq struct {
	url, kid, nonce string
	key             crypto.Signer
	payload         any
	alg             string              // override, e.g. "none"
	hdr             map[string]any      // extra or replaced header fields
	body            []byte              // send this instead
	contentType     string              // default application/jose+json
	jws             func([]byte) []byte // rewrite the JWS
}

func (e *testEnv) nonce(t testing.TB) string {
	t.Helper()
	resp, err := e.srv.Client().Head(e.srv.URL + "/acme/default/new-nonce")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("new-nonce Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}
	return resp.Header.Get("Replay-Nonce")
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sign builds a flattened JWS by hand, so tests can send what no library
// would.
func sign(t testing.TB, r rawReq) []byte {
	t.Helper()
	alg := r.alg
	if alg == "" {
		alg = "ES256"
	}
	hdr := map[string]any{"alg": alg, "url": r.url, "nonce": r.nonce}
	if r.kid != "" {
		hdr["kid"] = r.kid
	} else {
		jwk, _ := (&jose.JSONWebKey{Key: r.key.Public()}).MarshalJSON()
		hdr["jwk"] = json.RawMessage(jwk)
	}
	for k, v := range r.hdr {
		if v == nil {
			delete(hdr, k)
		} else {
			hdr[k] = v
		}
	}
	ph, _ := json.Marshal(hdr)
	var pl []byte
	switch p := r.payload.(type) {
	case nil:
	case []byte:
		pl = p
	default:
		pl, _ = json.Marshal(p)
	}
	input := b64(ph) + "." + b64(pl)
	var sig []byte
	if k, ok := r.key.(*rsa.PrivateKey); ok && alg != "none" {
		sum := sha256.Sum256([]byte(input))
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:]); err != nil {
			t.Fatal(err)
		}
	} else if alg != "none" {
		sig = es256(t, r.key.(*ecdsa.PrivateKey), []byte(input))
	}
	out, _ := json.Marshal(map[string]string{"protected": b64(ph), "payload": b64(pl), "signature": b64(sig)})
	return out
}

func (e *testEnv) send(t testing.TB, r rawReq) (*http.Response, []byte) {
	t.Helper()
	body := r.body
	if body == nil {
		body = sign(t, r)
	}
	if r.jws != nil {
		body = r.jws(body)
	}
	ct := r.contentType
	if ct == "" {
		ct = "application/jose+json"
	}
	resp, err := e.srv.Client().Post(r.url, ct, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// problemOf turns a response into an *xacme.Error, nil on 2xx.
func problemOf(resp *http.Response, body []byte) error {
	if resp.StatusCode < 300 {
		return nil
	}
	var p struct {
		Type, Detail string
	}
	_ = json.Unmarshal(body, &p)
	return &xacme.Error{StatusCode: resp.StatusCode, ProblemType: p.Type, Detail: p.Detail, Header: resp.Header}
}

// accountURL is the kid of c's account.
func accountURL(ctx context.Context, t testing.TB, c *xacme.Client) string {
	a, err := c.GetReg(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	return a.URI
}

// es256 signs input as JWS ES256: r || s, 32 bytes each.
func es256(t testing.TB, k *ecdsa.PrivateKey, input []byte) []byte {
	sum := sha256.Sum256(input)
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// postOrder sends newOrder with an arbitrary payload using c's account.
func (e *testEnv) postOrder(ctx context.Context, c *xacme.Client, payload map[string]any) (string, error) {
	t := e.t
	resp, body := e.send(t, rawReq{url: e.srv.URL + "/acme/default/new-order", kid: accountURL(ctx, t, c), nonce: e.nonce(t),
		key: c.Key, payload: payload})
	return resp.Header.Get("Location"), problemOf(resp, body)
}

// orderWith runs an order whose newOrder carries extra fields, with http-01.
func (e *testEnv) orderWith(ctx context.Context, c *xacme.Client, certKey crypto.Signer, extra map[string]any, names ...string) *x509.Certificate {
	e.t.Helper()
	payload := map[string]any{}
	for k, v := range extra {
		payload[k] = v
	}
	var ids []map[string]string
	for _, n := range names {
		ids = append(ids, map[string]string{"type": "dns", "value": n})
	}
	payload["identifiers"] = ids
	url, err := e.postOrder(ctx, c, payload)
	if err != nil {
		e.t.Fatalf("newOrder %v: %v", payload, err)
	}
	o, err := c.GetOrder(ctx, url)
	if err != nil {
		e.t.Fatal(err)
	}
	o = e.solve(ctx, c, o, "http-01")
	ders, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr(e.t, certKey, names...), false)
	if err != nil {
		e.t.Fatalf("CreateOrderCert: %v", err)
	}
	cert, err := x509.ParseCertificate(ders[0])
	if err != nil {
		e.t.Fatal(err)
	}
	return cert
}
