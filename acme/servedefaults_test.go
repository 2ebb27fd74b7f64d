package acme_test

// The defaults `mica serve` runs with, driven over HTTPS: validation
// reaches only public addresses, failures say what failed without saying
// where, and the rate limits are on.

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// serveDefaults replaces the harness's validation and limits with what a
// freshly initialised mica.yaml gives `mica serve`, keeping only what
// `mica serve --http01-port/--tlsalpn01-port/--dns-resolver` would set.
func serveDefaults(t *testing.T) func(*acme.Options) {
	cfg := config.Default(t.TempDir())
	return func(o *acme.Options) {
		v := cfg.ACME.Validation
		v.HTTP01Port, v.TLSALPN01Port, v.DNSResolver, v.Timeout = o.Validation.HTTP01Port, o.Validation.TLSALPN01Port, o.Validation.DNSResolver, o.Validation.Timeout
		o.Validation = v
		o.Limits = cfg.ACME.EffectiveLimits()
	}
}

// challengeProblem answers the http-01 (or other typ) challenge of a new
// order for name with answer and returns the problem it failed with.
func challengeProblem(t *testing.T, e *testEnv, c *xacme.Client, typ, name string, answer func(token, keyAuth string)) *xacme.Error {
	t.Helper()
	ctx := ctxT(t)
	o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: name}})
	if err != nil {
		t.Fatal(err)
	}
	z, err := c.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range z.Challenges {
		if ch.Type != typ {
			continue
		}
		var ka string
		switch typ {
		case "http-01":
			ka, _ = c.HTTP01ChallengeResponse(ch.Token)
		case "dns-01":
			ka, _ = c.DNS01ChallengeRecord(ch.Token)
		}
		if answer != nil {
			answer(ch.Token, ka)
		}
		if _, err := c.Accept(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.WaitAuthorization(ctx, o.AuthzURLs[0])
	var ae *xacme.AuthorizationError
	if !errors.As(err, &ae) || len(ae.Errors) == 0 {
		t.Fatalf("%s for %s: WaitAuthorization = %v, want a failed authorization", typ, name, err)
	}
	var pe *xacme.Error
	if !errors.As(ae.Errors[0], &pe) {
		t.Fatalf("authorization error %v has no problem", ae.Errors[0])
	}
	return pe
}

// noAddress fails when detail names an address or a port.
func noAddress(t *testing.T, detail string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if a != "" && strings.Contains(detail, a) {
			t.Errorf("problem detail %q names %q", detail, a)
		}
	}
	if strings.Contains(detail, "dial ") || strings.Contains(detail, "connect:") {
		t.Errorf("problem detail %q echoes a raw dial error", detail)
	}
}

// TestServeDefaultsRefuseNonPublic: with the serve defaults, a name that
// resolves into loopback, RFC 1918, link-local (cloud metadata), CGNAT,
// unique-local or an IPv4-mapped form of one fails http-01 with
// rejectedIdentifier naming the denied network, not the address.
func TestServeDefaultsRefuseNonPublic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, inventorytest.SQLite(t), serveDefaults(t))
	c := e.client(ctxT(t))
	for _, tc := range []struct{ name, addr string }{
		{"loopback.test", "127.0.0.1"},
		{"rfc1918.test", "10.0.0.5"},
		{"rfc1918b.test", "172.16.3.4"},
		{"rfc1918c.test", "192.168.1.1"},
		{"metadata.test", "169.254.169.254"},
		{"cgnat.test", "100.64.0.7"},
		{"zero.test", "0.0.0.0"},
		{"loopback6.test", "::1"},
		{"ula.test", "fd00::2"},
		{"linklocal6.test", "fe80::1"},
		{"mapped.test", "::ffff:10.0.0.5"},
		{"mapped-loopback.test", "::ffff:127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.dns.SetAddr(tc.name, netip.MustParseAddr(tc.addr))
			pe := challengeProblem(t, e, c, "http-01", tc.name, func(tok, ka string) { e.tokens.Store(tok, ka) })
			if !strings.HasSuffix(pe.ProblemType, ":rejectedIdentifier") || !strings.Contains(pe.Detail, "network the CA may not connect to") {
				t.Fatalf("http-01 into %s = %s %q, want rejectedIdentifier naming the denied network", tc.addr, pe.ProblemType, pe.Detail)
			}
			noAddress(t, pe.Detail, tc.addr, strings.TrimPrefix(tc.addr, "::ffff:"), ":"+strconv.Itoa(e.opts.Validation.HTTP01Port))
		})
	}
}

// TestValidationProblemsSayWhatNotWhere: each kind of failure is named in
// fixed words, with no internal address, port or raw dial error.
func TestValidationProblemsSayWhatNotWhere(t *testing.T) {
	t.Parallel()
	closed := closedPort(t)
	// hang accepts connections and never answers.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hang.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	hangPort := port(t, hang.Addr())
	// plain answers every connection in plain text, not TLS.
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
			c.Close()
		}
	}()
	plainPort := port(t, plain.Addr())
	// Three servers cover every case (building one is the slow part):
	// the harness's responders, one whose challenge ports are closed or
	// not TLS, one whose http-01 port never answers.
	type row struct {
		name, typ string
		answer    func(e *testEnv, name string) func(tok, ka string) // nil: no answer
		want      string                                             // problem type suffix
		detail    string                                             // must be in the detail
	}
	wrong := func(e *testEnv, _ string) func(string, string) {
		return func(tok, _ string) { e.tokens.Store(tok, "wrong") }
	}
	noAddr := func(e *testEnv, name string) func(string, string) {
		return func(string, string) { e.dns.SetAddr(name) }
	}
	for _, srv := range []struct {
		name string
		edit func(*acme.Options)
		rows []row
	}{
		{"responders", nil, []row{
			{"http-01 404", "http-01", nil, "unauthorized", "HTTP 404"},
			{"http-01 wrong answer", "http-01", wrong, "incorrectResponse", "not the key authorization"},
			{"dns-01 no TXT", "dns-01", nil, "unauthorized", "no TXT record found"},
			{"http-01 no address record", "http-01", noAddr, "dns", "no address record found for what3.test"},
		}},
		{"closed", func(o *acme.Options) { o.Validation.HTTP01Port, o.Validation.TLSALPN01Port = closed, plainPort }, []row{
			{"http-01 connection refused", "http-01", nil, "connection", "connection refused"},
			{"tls-alpn-01 not TLS", "tls-alpn-01", nil, "tls", "TLS handshake failed"},
		}},
		{"hang", func(o *acme.Options) {
			o.Validation.HTTP01Port, o.Validation.TLSALPN01Port, o.Validation.Timeout = hangPort, closed, time.Second
		}, []row{
			{"http-01 timeout", "http-01", nil, "connection", "timeout"},
			{"tls-alpn-01 connection refused", "tls-alpn-01", nil, "connection", "connection refused"},
		}},
	} {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, inventorytest.SQLite(t), srv.edit)
			c := e.client(ctxT(t))
			for i, tc := range srv.rows {
				t.Run(tc.name, func(t *testing.T) {
					name := "what" + strconv.Itoa(i) + ".test"
					var answer func(tok, ka string)
					if tc.answer != nil {
						answer = tc.answer(e, name)
					}
					pe := challengeProblem(t, e, c, tc.typ, name, answer)
					if !strings.HasSuffix(pe.ProblemType, ":"+tc.want) || !strings.Contains(pe.Detail, tc.detail) {
						t.Fatalf("problem = %s %q, want %s containing %q", pe.ProblemType, pe.Detail, tc.want, tc.detail)
					}
					noAddress(t, pe.Detail, "127.0.0.1", e.dns.Addr, ":"+strconv.Itoa(closed), ":"+strconv.Itoa(hangPort), ":"+strconv.Itoa(plainPort),
						":"+strconv.Itoa(e.opts.Validation.HTTP01Port), ":"+strconv.Itoa(e.opts.Validation.TLSALPN01Port))
				})
			}
		})
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := port(t, ln.Addr())
	ln.Close()
	return p
}

// TestServeDefaultsRateLimitAccounts: under the serve defaults the
// (DefaultACMELimits().AccountsPerIPPerHour+1)th new account from one
// address in an hour is answered 429 rateLimited with Retry-After.
func TestServeDefaultsRateLimitAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, inventorytest.SQLite(t), serveDefaults(t))
	url := e.srv.URL + "/acme/default/new-account"
	lim := e.opts.Limits.AccountsPerIPPerHour
	if lim <= 0 || lim > 1000 {
		t.Fatalf("serve default accounts_per_ip_per_hour = %d, want a positive limit", lim)
	}
	for i := range lim {
		resp, body := e.send(t, rawReq{url: url, nonce: e.nonce(t), key: newKey(t), payload: map[string]any{"termsOfServiceAgreed": true}})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("account %d: %d %s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := e.send(t, rawReq{url: url, nonce: e.nonce(t), key: newKey(t), payload: map[string]any{"termsOfServiceAgreed": true}})
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "rateLimited") ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("account %d: %d %s, want 429 rateLimited", lim+1, resp.StatusCode, body)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
		t.Fatalf("Retry-After = %q, want 1..3600 seconds", resp.Header.Get("Retry-After"))
	}
}

// TestServeDefaultsOpenedResponder: with the serve defaults and only the
// responder's address opened by the allow-list —
//   - the policy applies to every address dialed, so a redirect to cloud
//     metadata is refused, and the problem names neither address;
//   - an account whose validations of a name keep failing is stopped with
//     429 rateLimited and Retry-After on its next order for that name.
func TestServeDefaultsOpenedResponder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, inventorytest.SQLite(t), func(o *acme.Options) {
		serveDefaults(t)(o)
		o.Validation.AllowNetworks = []string{"127.0.0.1/32"} // the responder, and only it
	})
	ctx := ctxT(t)
	c := e.client(ctx)
	t.Run("redirect into cloud metadata", func(t *testing.T) {
		pe := challengeProblem(t, e, c, "http-01", "hop.test", func(tok, _ string) {
			e.tokens.Store(tok, "redirect:http://169.254.169.254/latest/meta-data/")
		})
		if !strings.HasSuffix(pe.ProblemType, ":rejectedIdentifier") || !strings.Contains(pe.Detail, "network the CA may not connect to") {
			t.Fatalf("redirect to cloud metadata = %s %q, want rejectedIdentifier", pe.ProblemType, pe.Detail)
		}
		noAddress(t, pe.Detail, "169.254.169.254", "meta-data")
	})
	t.Run("failed validations limit", func(t *testing.T) {
		lim := e.opts.Limits.FailedValidationsPerAccountPerNamePerHour
		if lim <= 0 || lim > 100 {
			t.Fatalf("serve default failed validations limit = %d, want a small positive limit", lim)
		}
		for range lim {
			challengeProblem(t, e, c, "http-01", "broken.test", func(tok, _ string) { e.tokens.Store(tok, "wrong") })
		}
		_, err := e.postOrder(ctx, c, map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "broken.test"}}})
		var pe *xacme.Error
		if !errors.As(err, &pe) || pe.StatusCode != http.StatusTooManyRequests || !strings.HasSuffix(pe.ProblemType, ":rateLimited") {
			t.Fatalf("order after %d failed validations = %v, want 429 rateLimited", lim, err)
		}
		if ra, err := strconv.Atoi(pe.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
			t.Fatalf("Retry-After = %q, want 1..3600 seconds", pe.Header.Get("Retry-After"))
		}
	})
}
