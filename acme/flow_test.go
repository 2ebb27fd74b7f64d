package acme_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestOrdersEveryChallenge drives whole orders with x/crypto/acme through
// each challenge type, with DNS, wildcard and IP identifiers, on every
// store backend.
func TestOrdersEveryChallenge(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			e := newEnv(t, st, nil)
			c := e.client(ctx)

			certs := e.issue(ctx, c, "http-01", "a.test", "127.0.0.1")
			e.verify(certs, "a.test")
			if len(certs[0].IPAddresses) != 1 || !certs[0].IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
				t.Fatalf("IP SANs = %v, want 127.0.0.1", certs[0].IPAddresses)
			}
			e.verify(e.issue(ctx, c, "dns-01", "*.w.test", "w.test"), "x.w.test")
			e.verify(e.issue(ctx, c, "tls-alpn-01", "t.test"), "t.test")
			e.verify(e.issue(ctx, c, "tls-alpn-01", "127.0.0.1"), "127.0.0.1")

			// Every issuance is in the inventory with the account as requester.
			acct, err := c.GetReg(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			recs, err := st.FindCertificates(ctx, inventory.CertFilter{Requester: acct.URI, Protocol: "acme"})
			if err != nil || len(recs) != 4 {
				t.Fatalf("inventory has %d ACME certificates of the account, %v; want 4", len(recs), err)
			}
		})
	}
}

// TestWildcardOnlyDNS01 checks that a wildcard authorization offers
// dns-01 alone and an IP one never offers dns-01.
func TestWildcardOnlyDNS01(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	e := newEnv(t, inventorytest.SQLite(t), nil)
	c := e.client(ctx)
	o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "*.x.test"}, {Type: "ip", Value: "::1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.AuthzURLs) != 2 {
		t.Fatalf("order has %d authorizations, want 2 (the wildcard name and the IP)", len(o.AuthzURLs))
	}
	var sawWildcard, sawIP bool
	for _, u := range o.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, ch := range z.Challenges {
			types = append(types, ch.Type)
		}
		switch z.Identifier.Type {
		case "dns":
			// RFC 8555 section 7.1.4: the identifier without "*.", and
			// wildcard: true.
			sawWildcard = true
			if z.Identifier.Value != "x.test" || !z.Wildcard {
				t.Errorf("wildcard authorization = %+v wildcard=%v, want identifier x.test with wildcard true", z.Identifier, z.Wildcard)
			}
			if len(types) != 1 || types[0] != "dns-01" {
				t.Errorf("wildcard challenges = %v, want only [dns-01]", types)
			}
		case "ip":
			sawIP = true
			if z.Wildcard || len(types) == 0 || slices.Contains(types, "dns-01") {
				t.Errorf("IP authorization: wildcard=%v challenges %v, want no wildcard and challenges other than dns-01", z.Wildcard, types)
			}
		default:
			t.Errorf("unexpected authorization identifier %+v", z.Identifier)
		}
	}
	if !sawWildcard || !sawIP {
		t.Errorf("authorizations: wildcard %v, IP %v; want both", sawWildcard, sawIP)
	}
}

// TestFailedChallengeInvalidatesOrder: a wrong http-01 answer makes the
// challenge, authorization and order invalid, with a problem document.
func TestFailedChallengeInvalidatesOrder(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	e := newEnv(t, inventorytest.SQLite(t), nil)
	c := e.client(ctx)
	o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "bad.test"}})
	if err != nil {
		t.Fatal(err)
	}
	z, _ := c.GetAuthorization(ctx, o.AuthzURLs[0])
	for _, ch := range z.Challenges {
		if ch.Type == "http-01" {
			e.tokens.Store(ch.Token, "wrong")
			if _, err := c.Accept(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, err = c.WaitAuthorization(ctx, o.AuthzURLs[0])
	var ae *xacme.AuthorizationError
	if !errors.As(err, &ae) {
		t.Fatalf("WaitAuthorization = %v, want an AuthorizationError", err)
	}
	_, err = c.WaitOrder(ctx, o.URI)
	var oe *xacme.OrderError
	if !errors.As(err, &oe) || oe.Status != xacme.StatusInvalid {
		t.Fatalf("WaitOrder = %v, want invalid order", err)
	}
	// Finalizing an invalid order: orderNotReady.
	_, _, err = c.CreateOrderCert(ctx, o.FinalizeURL, csr(t, newKey(t), "bad.test"), false)
	wantProblem(t, err, "orderNotReady", http.StatusForbidden)
}

func wantProblem(t *testing.T, err error, typ string, status int) {
	t.Helper()
	var ae *xacme.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v, want ACME problem %s", err, typ)
	}
	if ae.ProblemType != "urn:ietf:params:acme:error:"+typ || (status != 0 && ae.StatusCode != status) {
		t.Fatalf("problem = %s (%d) %q, want %s (%d)", ae.ProblemType, ae.StatusCode, ae.Detail, typ, status)
	}
}

// TestAccountLifecycle: keyChange, then deactivation.
func TestAccountLifecycle(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	e := newEnv(t, inventorytest.SQLite(t), nil)
	c := e.client(ctx)
	before, err := c.GetReg(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	oldKey := c.Key
	other := e.client(ctx)
	// Rolling onto a key another account holds is refused.
	if err := c.AccountKeyRollover(ctx, other.Key); err == nil {
		t.Fatal("AccountKeyRollover onto another account's key succeeded")
	}
	newK := newKey(t)
	if err := c.AccountKeyRollover(ctx, newK); err != nil {
		t.Fatalf("AccountKeyRollover: %v", err)
	}
	after, err := e.newClient(newK, "default").GetReg(ctx, "")
	if err != nil || after.URI != before.URI {
		t.Fatalf("GetReg with the new key = %+v, %v; want account %s", after, err, before.URI)
	}
	if _, err = e.newClient(oldKey, "default").GetReg(ctx, ""); !errors.Is(err, xacme.ErrNoAccount) {
		t.Fatalf("GetReg with the old key = %v, want accountDoesNotExist", err)
	}
	e.verify(e.issue(ctx, c, "http-01", "k.test"), "k.test")

	if err := c.DeactivateReg(ctx); err != nil {
		t.Fatalf("DeactivateReg: %v", err)
	}
	// RFC 8555 section 7.3.6: a deactivated account is refused with 401.
	_, err = c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "k.test"}})
	wantProblem(t, err, "unauthorized", http.StatusUnauthorized)
	evs, err := e.store.Events(ctx, inventory.EventFilter{Action: "acme.account."})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, ev := range evs {
		if ev.Object == before.URI {
			actions = append(actions, ev.Action)
		}
	}
	if len(actions) != 3 { // create, keychange, deactivate (newest first)
		t.Fatalf("account events = %v, want create, keychange, deactivate", actions)
	}
}

// TestRevokeAndARI: renewal info for an issued certificate, renewal with
// "replaces" linking the predecessor, revocation by the account and by the
// certificate key, and ARI's urgent window for a revoked certificate.
func TestRevokeAndARI(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	e := newEnv(t, inventorytest.SQLite(t), nil)
	c := e.client(ctx)
	certKey := newKey(t)
	first := e.orderWith(ctx, c, certKey, nil, "r.test")

	id, err := acme.CertID(first)
	if err != nil {
		t.Fatal(err)
	}
	win := e.renewalInfo(t, id)
	if !win.Start.After(time.Now()) || !win.End.After(win.Start) || win.End.After(first.NotAfter) {
		t.Fatalf("suggested window %+v for a fresh certificate expiring %s", win, first.NotAfter)
	}
	second := e.orderWith(ctx, c, newKey(t), map[string]any{"replaces": id}, "r.test")
	rec, err := e.store.Certificate(ctx, e.ca.IssuerID(), second.SerialNumber.Text(16))
	if err != nil || rec.Predecessor != first.SerialNumber.Text(16) {
		t.Fatalf("renewal predecessor = %q, %v; want %s", rec.Predecessor, err, first.SerialNumber.Text(16))
	}
	// A second renewal of the same certificate is a conflict.
	_, err = e.postOrder(ctx, c, map[string]any{"replaces": id, "identifiers": []map[string]string{{"type": "dns", "value": "r.test"}}})
	wantProblem(t, err, "conflict", http.StatusConflict)

	// Another account may not revoke it.
	stranger := e.client(ctx)
	wantProblem(t, stranger.RevokeCert(ctx, nil, second.Raw, xacme.CRLReasonKeyCompromise), "unauthorized", http.StatusForbidden)
	if err := c.RevokeCert(ctx, nil, second.Raw, xacme.CRLReasonKeyCompromise); err != nil {
		t.Fatalf("RevokeCert by the account: %v", err)
	}
	// x/crypto/acme hides alreadyRevoked; ask by hand.
	resp, body := e.send(t, rawReq{url: e.srv.URL + "/acme/default/revoke-cert", kid: accountURL(ctx, t, c), nonce: e.nonce(t), key: c.Key,
		payload: map[string]any{"certificate": b64(second.Raw)}})
	wantProblem(t, problemOf(resp, body), "alreadyRevoked", http.StatusBadRequest)
	// Revocation signed by the certificate's own key (jwk form).
	if err := stranger.RevokeCert(ctx, certKey, first.Raw, xacme.CRLReasonSuperseded); err != nil {
		t.Fatalf("RevokeCert with the certificate key: %v", err)
	}
	sid, _ := acme.CertID(second)
	if win := e.renewalInfo(t, sid); win.Start.After(time.Now()) {
		t.Fatalf("revoked certificate's window starts %s, want now", win.Start)
	}
}

type window struct{ Start, End time.Time }

func (e *testEnv) renewalInfo(t *testing.T, id string) window {
	t.Helper()
	resp, err := e.srv.Client().Get(e.srv.URL + "/acme/default/renewal-info/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ SuggestedWindow window }
	if resp.StatusCode != 200 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("renewal-info status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.SuggestedWindow
}
