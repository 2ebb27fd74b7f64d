package acme_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path"
	"strings"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// readyOrder runs an order for name up to "ready" and returns it with its
// stored ID.
func (e *testEnv) readyOrder(ctx context.Context, c *xacme.Client, name string) (*xacme.Order, string) {
	e.t.Helper()
	o, err := c.AuthorizeOrder(ctx, xacme.DomainIDs(name))
	if err != nil {
		e.t.Fatalf("AuthorizeOrder: %v", err)
	}
	o = e.solve(ctx, c, o, "http-01")
	if o.Status != xacme.StatusReady {
		e.t.Fatalf("order is %s, want ready", o.Status)
	}
	return o, path.Base(o.URI)
}

// TestCrashedFinalizeOrdersClose leaves orders exactly as a finalize
// killed by SIGKILL leaves them (processing, with a committed certificate
// the order names but was never moved to valid for; processing with no
// reservation at all), and checks over HTTPS what a retrying client sees:
// the certificate, or after the recovery pass an invalid order with a
// problem naming the interruption; never processing forever.
func TestCrashedFinalizeOrdersClose(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			e := newEnv(t, st, nil)
			c := e.client(ctx)
			acct, err := c.GetReg(ctx, "")
			if err != nil {
				t.Fatal(err)
			}

			// Killed after the certificate's commit, before the order's.
			o1, id1 := e.readyOrder(ctx, c, "crash-linked.test")
			stored, err := st.ACMEOrder(ctx, id1)
			if err != nil {
				t.Fatal(err)
			}
			issued, err := e.ca.Issue(ctx, ca.Request{CSR: csr(t, newKey(t), "crash-linked.test"), Profile: stored.Profile,
				Identifiers: []string{"dns:crash-linked.test"}, Requester: acct.URI, Protocol: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.UpdateACMEOrder(ctx, id1, []string{"ready"}, inventory.ACMEOrderUpdate{Status: "processing",
				CertIssuerID: issued.Record.IssuerID, CertSerial: issued.Record.Serial}); err != nil {
				t.Fatal(err)
			}
			got, err := c.GetOrder(ctx, o1.URI)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != xacme.StatusValid || got.CertURL == "" {
				t.Fatalf("crashed order after a committed certificate = %s (certificate %q), want valid with its certificate", got.Status, got.CertURL)
			}
			ders, err := c.FetchCert(ctx, got.CertURL, true)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ders[0], issued.Certificate.Raw) {
				t.Fatal("the order's certificate is not the one committed before the crash")
			}

			// Killed between ready → processing and the reservation.
			o2, id2 := e.readyOrder(ctx, c, "crash-none.test")
			if err := st.UpdateACMEOrder(ctx, id2, []string{"ready"}, inventory.ACMEOrderUpdate{Status: "processing"}); err != nil {
				t.Fatal(err)
			}
			seen := map[string]time.Time{}
			now := time.Now()
			for _, at := range []time.Time{now, now.Add(time.Minute)} {
				if _, err := st.Recover(ctx, inventory.RecoverOptions{Now: at, StaleAfter: 40 * time.Second,
					TokenStaleAfter: 2 * time.Minute, Seen: seen}); err != nil {
					t.Fatal(err)
				}
			}
			got, err = c.GetOrder(ctx, o2.URI)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != xacme.StatusInvalid || got.Error == nil ||
				got.Error.ProblemType != "urn:ietf:params:acme:error:serverInternal" || !strings.Contains(got.Error.Detail, "create a new order") {
				t.Fatalf("crashed order without a reservation = %s (%+v), want invalid with serverInternal naming the interruption", got.Status, got.Error)
			}
		})
	}
}

// TestNonceDuringOutage: with the database gone, a signed request answers
// 503 with Retry-After and a problem document, as finalize does, not 500
// with an empty body. new-nonce (HEAD and GET) needs no database since
// nonces are MAC-protected values (docs/architecture.md, "Nonces"), so it
// still answers with a fresh nonce; the request that uses it gets the 503.
func TestNonceDuringOutage(t *testing.T) {
	t.Parallel()
	st := inventorytest.SQLite(t)
	e := newEnv(t, st, nil)
	url := e.srv.URL + "/acme/default/new-nonce"
	nonce := e.nonce(t)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// A signed request (new-account) fails on its nonce's redemption.
	resp, body := e.send(t, rawReq{url: e.srv.URL + "/acme/default/new-account", nonce: nonce, key: newKey(t),
		payload: map[string]any{"termsOfServiceAgreed": true}})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "urn:ietf:params:acme:error:serverInternal") {
		t.Errorf("new-account during the outage = %d, Retry-After %q, %s; want 503 problem with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	for _, m := range []string{http.MethodHead, http.MethodGet} {
		req, _ := http.NewRequest(m, url, nil)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 || resp.Header.Get("Replay-Nonce") == "" {
			t.Errorf("%s new-nonce during the outage = %d, Replay-Nonce %q; want success with a nonce", m, resp.StatusCode, resp.Header.Get("Replay-Nonce"))
		}
	}
	// The nonce handed out during the outage is refused with 503, not
	// accepted: its redemption still needs the database.
	resp, body = e.send(t, rawReq{url: e.srv.URL + "/acme/default/new-account", nonce: e.nonce(t), key: newKey(t),
		payload: map[string]any{"termsOfServiceAgreed": true}})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("new-account with a nonce from the outage = %d %s, want 503", resp.StatusCode, body)
	}
}
