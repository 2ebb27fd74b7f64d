package acme_test

// Regression tests for RFC 8555 MUSTs: identifiers checked as a
// certificate would carry them, the account key refused as a certificate
// key, JWS extensions refused, 401 for deactivated accounts, and
// problem+json with a fresh nonce on every error, including those the
// server's middleware raises before ACME routes.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/server"
)

// TestIdentifiersCheckedAtNewOrder: every identifier a certificate could
// not carry is refused at newOrder, with the identifier named.
func TestIdentifiersCheckedAtNewOrder(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	e := newEnv(t, inventorytest.SQLite(t), nil)
	c := e.client(ctx)
	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		typ, value string
		want       string // problem type; "" means accepted
		detail     string // substring of the detail
		canonical  string // accepted: the identifier as the order lists it
	}{
		{"dns", "a.test", "", "", "a.test"},
		{"dns", "Mixed.Case.TEST", "", "", "mixed.case.test"},
		{"dns", "*.w.test", "", "", "*.w.test"},
		{"dns", "xn--bcher-kva.test", "", "", "xn--bcher-kva.test"},                                   // bücher
		{"dns", long + "." + long + "." + long + "." + strings.Repeat("a", 56) + ".test", "", "", ""}, // 253 octets
		{"dns", "a.test.", "rejectedIdentifier", "trailing dot", ""},
		{"dns", "127.0.0.1", "rejectedIdentifier", "type ip", ""},
		{"dns", "::1", "rejectedIdentifier", "type ip", ""},
		{"dns", "127.1", "rejectedIdentifier", "type ip", ""}, // inet_aton reads it as 127.0.0.1
		{"dns", "*.10.0.0.1", "rejectedIdentifier", "type ip", ""},
		{"dns", "xn--zz.test", "rejectedIdentifier", "A-label", ""},          // not punycode
		{"dns", "xn--abc.test", "rejectedIdentifier", "A-label", ""},         // decodes to control characters
		{"dns", "xn--1ch.test", "rejectedIdentifier", "A-label", ""},         // "≠": disallowed by IDNA2008
		{"dns", "xn--a-ecp.test", "rejectedIdentifier", "A-label", ""},       // "a⒈": disallowed
		{"dns", "xn--ss-.test", "rejectedIdentifier", "hyphen", ""},          // decodes to plain ASCII "ss"
		{"dns", "xn--bcher-KVA.test", "", "", "xn--bcher-kva.test"},          // case folds before the check
		{"dns", "ab--cd.test", "rejectedIdentifier", "third and fourth", ""}, // reserved R-LDH label
		{"dns", "bücher.test", "rejectedIdentifier", "A-labels", ""},
		{"dns", strings.Repeat("a", 64) + ".test", "rejectedIdentifier", "63", ""},
		{"dns", long + "." + long + "." + long + "." + strings.Repeat("a", 57) + ".test", "rejectedIdentifier", "253", ""},
		{"dns", "a.*.test", "rejectedIdentifier", "wildcard", ""},
		{"dns", "localhost", "rejectedIdentifier", "two labels", ""},
		{"ip", "10.0.0.1", "", "", "10.0.0.1"},
		{"ip", "::ffff:10.0.0.2", "", "", "10.0.0.2"},
	} {
		url, err := e.postOrder(ctx, c, map[string]any{"identifiers": []map[string]string{{"type": tc.typ, "value": tc.value}}})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s %q refused: %v", tc.typ, tc.value, err)
				continue
			}
			o, err := c.GetOrder(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			if tc.canonical != "" && (len(o.Identifiers) != 1 || o.Identifiers[0].Value != tc.canonical) {
				t.Errorf("%s %q ordered as %+v, want %q", tc.typ, tc.value, o.Identifiers, tc.canonical)
			}
			continue
		}
		var ae *xacme.Error
		if !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:"+tc.want || ae.StatusCode != http.StatusBadRequest ||
			!strings.Contains(ae.Detail, tc.detail) {
			t.Errorf("%s %q: got %v, want %s mentioning %q", tc.typ, tc.value, err, tc.want, tc.detail)
		}
	}
}

// TestFinalizeRefusesAccountKey: RFC 8555 section 11.1, the certificate
// key must not be the account key. The refusal is audited, as every
// finalize refusal is (CSR mismatch too), and leaves the order ready.
func TestFinalizeRefusesAccountKey(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	e := newEnv(t, inventorytest.SQLite(t), nil)
	c := e.client(ctx)
	o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "k.test"}})
	if err != nil {
		t.Fatal(err)
	}
	o = e.solve(ctx, c, o, "http-01")
	_, _, err = c.CreateOrderCert(ctx, o.FinalizeURL, csr(t, c.Key, "k.test"), false)
	wantProblem(t, err, "badCSR", http.StatusBadRequest)
	_, _, err = c.CreateOrderCert(ctx, o.FinalizeURL, csr(t, newKey(t), "k.test", "other.test"), false)
	wantProblem(t, err, "badCSR", http.StatusBadRequest)

	evs, err := e.store.Events(ctx, inventory.EventFilter{Action: "acme.order.finalize"})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, ev := range evs {
		if strings.HasSuffix(o.URI, strings.TrimPrefix(ev.Object, "acme-order:")) && ev.Outcome == "error" {
			details = append(details, string(ev.Details))
		}
	}
	if len(details) != 2 || !strings.Contains(strings.Join(details, " "), "badCSR") {
		t.Fatalf("finalize refusals audited as %v, want two badCSR events with outcome error", details)
	}
	if _, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr(t, newKey(t), "k.test"), false); err != nil {
		t.Fatalf("finalize with a separate key after the refusals: %v", err)
	}
}

// TestJWSExtensionsRefused: ACME uses no JWS extensions, so an unencoded
// payload (RFC 7797 b64: false) and any crit header are malformed, even
// when the signature verifies.
func TestJWSExtensionsRefused(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	e := newEnv(t, inventorytest.SQLite(t), nil)
	c := e.client(ctx)
	kid := accountURL(ctx, t, c)
	// POST-as-GET: the empty payload reads the same encoded or not, so
	// the signature verifies under either reading.
	if resp, body := e.send(t, rawReq{url: kid, kid: kid, nonce: e.nonce(t), key: c.Key}); resp.StatusCode != http.StatusOK {
		t.Fatalf("plain POST-as-GET: %d %s", resp.StatusCode, body)
	}
	for name, hdr := range map[string]map[string]any{
		"b64 false":       {"b64": false, "crit": []string{"b64"}},
		"b64 false alone": {"b64": false},
		"unknown crit":    {"crit": []string{"exp"}, "exp": 1},
		"empty crit":      {"crit": []string{}},
	} {
		resp, body := e.send(t, rawReq{url: kid, kid: kid, nonce: e.nonce(t), key: c.Key, hdr: hdr})
		wantRawProblem(t, name, resp, body, "malformed", http.StatusBadRequest)
	}
}

// TestDeactivatedAccountIs401: RFC 8555 section 7.3.6, every request of a
// deactivated account, by kid or by its key at newAccount, is 401.
func TestDeactivatedAccountIs401(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	e := newEnv(t, inventorytest.SQLite(t), nil)
	c := e.client(ctx)
	kid := accountURL(ctx, t, c)
	if err := c.DeactivateReg(ctx); err != nil {
		t.Fatal(err)
	}
	base := e.srv.URL + "/acme/default/"
	for name, r := range map[string]rawReq{
		"account POST-as-GET":  {url: kid, kid: kid},
		"newOrder":             {url: base + "new-order", kid: kid, payload: map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "d.test"}}}},
		"newAccount, same key": {url: base + "new-account", payload: map[string]any{"onlyReturnExisting": true}},
	} {
		r.key, r.nonce = c.Key, e.nonce(t)
		resp, body := e.send(t, r)
		wantRawProblem(t, name, resp, body, "unauthorized", http.StatusUnauthorized)
	}
}

// TestErrorsAreProblems drives ACME behind the real server middleware:
// every error under /acme/, also those raised before the ACME handler
// (unknown paths, wrong methods, the server's body cap), is
// application/problem+json with a fresh Replay-Nonce, and 405 lists Allow.
func TestErrorsAreProblems(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	e := newEnv(t, inventorytest.SQLite(t), func(o *acme.Options) { o.MaxBodyBytes = 8 << 10 })
	cert := e.srv.TLS.Certificates[0]
	srv, err := server.New(server.Options{Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil },
		Store:          e.store, MaxBodyBytes: 16 << 10, Mount: []server.Mounter{e.acme}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	base := "https://" + srv.HTTPSAddr().String()
	client := e.srv.Client()

	for _, tc := range []struct {
		name, method, path string
		body               []byte
		status             int
		allow              string
	}{
		{"no profile", "GET", "/acme/", nil, 404, ""},
		{"bare /acme", "POST", "/acme", nil, 404, ""},
		{"unknown profile", "POST", "/acme/nope/new-order", []byte("{}"), 404, ""},
		{"unknown resource", "POST", "/acme/default/nope", []byte("{}"), 404, ""},
		{"GET on a POST resource", "GET", "/acme/default/new-order", nil, 405, "POST"},
		{"POST on the directory", "POST", "/acme/default/directory", []byte("{}"), 405, "GET"},
		{"PUT on new-nonce", "PUT", "/acme/default/new-nonce", nil, 405, "GET, HEAD"},
		{"over the server's body cap", "POST", "/acme/default/new-order", bytes.Repeat([]byte("x"), 32<<10), 413, ""},
		{"over the ACME body cap", "POST", "/acme/default/new-order", bytes.Repeat([]byte("x"), 12<<10), 413, ""},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, bytes.NewReader(tc.body))
		if tc.body == nil {
			req.Body = http.NoBody
		}
		req.Header.Set("Content-Type", "application/jose+json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p struct {
			Type   string
			Status int
		}
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/problem+json" ||
			json.Unmarshal(body, &p) != nil || p.Status != tc.status || !strings.HasPrefix(p.Type, "urn:ietf:params:acme:error:") {
			t.Errorf("%s: %d %q %s, want a %d problem document", tc.name, resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status)
		}
		if resp.Header.Get("Replay-Nonce") == "" {
			t.Errorf("%s: no Replay-Nonce", tc.name)
		}
		if got := resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s: Allow %q, want %q", tc.name, got, tc.allow)
		}
	}
	// The nonce of an error response is good for the next request.
	resp, err := client.Get(base + "/acme/default/new-order")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r, body := sendTo(t, client, rawReq{url: base + "/acme/default/new-account", nonce: resp.Header.Get("Replay-Nonce"), key: newKey(t),
		payload: map[string]any{"termsOfServiceAgreed": true}})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("newAccount with the nonce of a 405: %d %s", r.StatusCode, body)
	}
}

// wantRawProblem checks a hand-sent request's problem document.
func wantRawProblem(t *testing.T, name string, resp *http.Response, body []byte, typ string, status int) {
	t.Helper()
	var p struct {
		Type   string
		Status int
	}
	_ = json.Unmarshal(body, &p)
	if resp.StatusCode != status || p.Type != "urn:ietf:params:acme:error:"+typ || p.Status != status {
		t.Errorf("%s: %d %s, want %s (%d)", name, resp.StatusCode, body, typ, status)
	}
	if resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Replay-Nonce") == "" {
		t.Errorf("%s: Content-Type %q, Replay-Nonce %q", name, resp.Header.Get("Content-Type"), resp.Header.Get("Replay-Nonce"))
	}
}

// sendTo posts a hand-built JWS with client.
func sendTo(t *testing.T, client *http.Client, r rawReq) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Post(r.url, "application/jose+json", bytes.NewReader(sign(t, r)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
