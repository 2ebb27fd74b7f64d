package acme_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// failedChallenge starts http-01 for name and returns the problem type the
// validation ended with.
func failedChallenge(t *testing.T, e *testEnv, c *xacme.Client, name string, answer func(token, keyAuth string)) string {
	t.Helper()
	ctx := ctxT(t)
	o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: name}})
	if err != nil {
		t.Fatal(err)
	}
	z, _ := c.GetAuthorization(ctx, o.AuthzURLs[0])
	for _, ch := range z.Challenges {
		if ch.Type == "http-01" {
			v, _ := c.HTTP01ChallengeResponse(ch.Token)
			answer(ch.Token, v)
			if _, err := c.Accept(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, err = c.WaitAuthorization(ctx, o.AuthzURLs[0])
	var ae *xacme.AuthorizationError
	if !errors.As(err, &ae) || len(ae.Errors) == 0 {
		t.Fatalf("WaitAuthorization = %v, want a failed authorization", err)
	}
	var pe *xacme.Error
	if !errors.As(ae.Errors[0], &pe) {
		t.Fatalf("authorization error %v has no problem", ae.Errors[0])
	}
	return pe.ProblemType
}

// TestValidationNetworkPolicy: a denied network is refused at connect time.
func TestValidationNetworkPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, inventorytest.SQLite(t), func(o *acme.Options) { o.Validation.DenyNetworks = []string{"127.0.0.0/8"} })
	c := e.client(ctxT(t))
	got := failedChallenge(t, e, c, "denied.test", func(tok, ka string) { e.tokens.Store(tok, ka) })
	if !strings.HasSuffix(got, ":rejectedIdentifier") {
		t.Fatalf("validation into a denied network = %s, want rejectedIdentifier", got)
	}
}

// TestHTTP01Redirects: a redirect to a port other than the challenge ports
// is not followed.
func TestHTTP01Redirects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, inventorytest.SQLite(t), nil)
	c := e.client(ctxT(t))
	// The responder redirects tokens it stores as "redirect:URL". The
	// forbidden port is not closed: a server there answers every request
	// with the right key authorization, so a validator that followed the
	// redirect would validate. Refusing it is then the only way to fail,
	// and the server must never have been asked.
	var keyAuth atomic.Value
	var hits atomic.Int32
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		ka, _ := keyAuth.Load().(string)
		io.WriteString(w, ka)
	}))
	t.Cleanup(forbidden.Close)
	_, port, _ := net.SplitHostPort(forbidden.Listener.Addr().String())
	got := failedChallenge(t, e, c, "redir.test", func(tok, ka string) {
		keyAuth.Store(ka)
		e.tokens.Store(tok, "redirect:http://redir.test:"+port+"/.well-known/acme-challenge/"+tok)
	})
	if n := hits.Load(); n != 0 {
		t.Fatalf("the validator followed a redirect to port %s (%d requests; problem %s), want it refused", port, n, got)
	}
	if !strings.HasPrefix(got, "urn:ietf:params:acme:error:") {
		t.Fatalf("refused redirect: problem type %q, want an ACME error", got)
	}
	// A redirect to the http-01 port is followed.
	ctx := context.Background()
	o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "hop.test"}})
	if err != nil {
		t.Fatal(err)
	}
	z, _ := c.GetAuthorization(ctx, o.AuthzURLs[0])
	for _, ch := range z.Challenges {
		if ch.Type == "http-01" {
			v, _ := c.HTTP01ChallengeResponse(ch.Token)
			e.tokens.Store(ch.Token, "redirect:/.well-known/acme-challenge/hop-"+ch.Token)
			e.tokens.Store("hop-"+ch.Token, v)
			if _, err := c.Accept(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := c.WaitAuthorization(ctx, o.AuthzURLs[0]); err != nil {
		t.Fatalf("validation through an allowed redirect: %v", err)
	}
}
