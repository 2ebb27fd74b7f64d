package acme_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// replica starts another ACME server on e's store and CA with e's
// options, adjusted by edit, and returns its base URL.
func (e *testEnv) replica(t *testing.T, edit func(*acme.Options)) *httptest.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	opts := e.opts
	if edit != nil {
		edit(&opts)
	}
	s, err := acme.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	s.Mount(r, nil)
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	return srv
}

// TestRateLimitsOverHTTP: the per-account order limit and the failed
// validation limit answer rateLimited with a Retry-After within the hour,
// and only for the account (and name) that hit them.
func TestRateLimitsOverHTTP(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			e := newEnv(t, st, func(o *acme.Options) {
				o.Limits = acme.Limits{OrdersPerAccountPerHour: 3, FailedValidationsPerAccountPerNamePerHour: 1}
			})
			c, other := e.client(ctx), e.client(ctx)
			order := func(c *xacme.Client, name string) error {
				_, err := e.postOrder(ctx, c, map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": name}}})
				return err
			}
			// One failed validation of fail.test uses one order.
			if got := failedChallenge(t, e, c, "fail.test", func(tok, _ string) { e.tokens.Store(tok, "wrong") }); !strings.HasSuffix(got, ":incorrectResponse") {
				t.Fatalf("wrong http-01 answer = %s", got)
			}
			for _, tc := range []struct {
				name   string
				client *xacme.Client
				ident  string
				want   string // problem type suffix; "" for success
			}{
				{"failed name refused", c, "fail.test", "rateLimited"},
				{"other name fine", c, "ok1.test", ""},
				{"other account may order the failed name", other, "fail.test", ""},
				{"third order fine", c, "ok2.test", ""},
				{"fourth order over the account limit", c, "ok3.test", "rateLimited"},
				{"other account unaffected", other, "ok3.test", ""},
			} {
				err := order(tc.client, tc.ident)
				if tc.want == "" {
					if err != nil {
						t.Fatalf("%s: newOrder(%s) = %v, want success", tc.name, tc.ident, err)
					}
					continue
				}
				var pe *xacme.Error
				if !errors.As(err, &pe) || !strings.HasSuffix(pe.ProblemType, ":"+tc.want) || pe.StatusCode != http.StatusTooManyRequests {
					t.Fatalf("%s: newOrder(%s) = %v, want %s 429", tc.name, tc.ident, err, tc.want)
				}
				ra, err := strconv.Atoi(pe.Header.Get("Retry-After"))
				if err != nil || ra < 1 || ra > 3600 {
					t.Fatalf("%s: Retry-After = %q, want 1..3600 seconds", tc.name, pe.Header.Get("Retry-After"))
				}
			}
		})
	}
}

// slowCA holds Issue until release is closed.
type slowCA struct {
	*ca.CA
	release chan struct{}
}

func (s *slowCA) Issue(ctx context.Context, req ca.Request) (*ca.Issued, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.CA.Issue(ctx, req)
}

// TestFinalizeProcessing: a CA slower than FinalizeWait gets "processing"
// with Retry-After and a Location; the client polls the order to valid.
func TestFinalizeProcessing(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	slow := &slowCA{release: make(chan struct{})}
	e := newEnv(t, inventorytest.SQLite(t), func(o *acme.Options) {
		slow.CA = o.CA.(*ca.CA)
		o.CA = slow
		o.FinalizeWait = 50 * time.Millisecond
	})
	c := e.client(ctx)
	o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "slow.test"}})
	if err != nil {
		t.Fatal(err)
	}
	o = e.solve(ctx, c, o, "http-01")
	resp, body := e.send(t, rawReq{url: o.FinalizeURL, kid: accountURL(ctx, t, c), nonce: e.nonce(t), key: c.Key,
		payload: map[string]string{"csr": b64(csr(t, newKey(t), "slow.test"))}})
	var got struct{ Status string }
	_ = json.Unmarshal(body, &got)
	if resp.StatusCode != http.StatusOK || got.Status != "processing" || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Location") != o.URI {
		t.Fatalf("finalize = %d %s, Retry-After %q, Location %q; want 200 processing with Retry-After and Location %s",
			resp.StatusCode, got.Status, resp.Header.Get("Retry-After"), resp.Header.Get("Location"), o.URI)
	}
	// A second finalize while processing is refused.
	resp, body = e.send(t, rawReq{url: o.FinalizeURL, kid: accountURL(ctx, t, c), nonce: e.nonce(t), key: c.Key,
		payload: map[string]string{"csr": b64(csr(t, newKey(t), "slow.test"))}})
	wantProblem(t, problemOf(resp, body), "orderNotReady", http.StatusForbidden)
	if po, err := c.GetOrder(ctx, o.URI); err != nil || po.Status != xacme.StatusProcessing {
		t.Fatalf("order while the CA works = %v, %v; want processing", po, err)
	}
	close(slow.release)
	done, err := c.WaitOrder(ctx, o.URI)
	if err != nil || done.Status != xacme.StatusValid || done.CertURL == "" {
		t.Fatalf("WaitOrder = %+v, %v; want valid with a certificate URL", done, err)
	}
	ders, err := c.FetchCert(ctx, done.CertURL, true)
	if err != nil || len(ders) < 2 {
		t.Fatalf("FetchCert = %d certificates, %v", len(ders), err)
	}
}

// rotatedCA reports another issuing CA as active, as *ca.CA does after a
// rotation (or, with an older one, a replica not yet restarted).
type rotatedCA struct {
	*ca.CA
	active string
}

func (r rotatedCA) IssuerID() string { return r.active }

// putIssuer records a throw-away issuing CA under parent, valid from
// notBefore.
func (e *testEnv) putIssuer(t *testing.T, id, parent string, notBefore time.Time) {
	t.Helper()
	k := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: id}, NotBefore: notBefore,
		NotAfter: notBefore.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutIssuer(ctxT(t), &inventory.Issuer{ID: id, ParentID: parent, Subject: id,
		NotBefore: notBefore, NotAfter: notBefore.Add(48 * time.Hour), DER: der}, inventory.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
}

// TestARIUrgentWindows: the suggested window moves to now for a blocked
// key, for an issuer that is retiring or retired, and for an issuer that
// is no longer the CA's active one; it stays in the future otherwise.
func TestARIUrgentWindows(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			e := newEnv(t, st, nil)
			c := e.client(ctx)
			own, err := e.store.Issuer(ctx, e.ca.IssuerID())
			if err != nil {
				t.Fatal(err)
			}
			e.putIssuer(t, "next-issuing-ca", own.ParentID, own.NotBefore.Add(time.Hour))
			e.putIssuer(t, "previous-issuing-ca", own.ParentID, own.NotBefore.Add(-time.Hour))
			rotated := e.replica(t, func(o *acme.Options) { o.CA = rotatedCA{e.ca, "next-issuing-ca"} })
			lagging := e.replica(t, func(o *acme.Options) { o.CA = rotatedCA{e.ca, "previous-issuing-ca"} })
			for _, tc := range []struct {
				name   string
				srv    string // base URL; "" is e's
				setup  func(t *testing.T, rec *inventory.Certificate)
				urgent bool
			}{
				{name: "fresh certificate"},
				{name: "blocked key", urgent: true, setup: func(t *testing.T, rec *inventory.Certificate) {
					if err := e.store.BlockKey(ctx, inventory.BlockedKey{PublicKeySHA256: rec.PublicKeySHA256, Reason: "keyCompromise", Actor: "test"},
						inventory.Event{Actor: "test"}); err != nil {
						t.Fatal(err)
					}
				}},
				{name: "issuer rotated out of the CA", srv: rotated.URL, urgent: true},
				{name: "replica still on the previous issuer", srv: lagging.URL},
				{name: "issuer retiring", urgent: true, setup: func(t *testing.T, _ *inventory.Certificate) {
					if err := e.store.UpdateIssuerStatus(ctx, e.ca.IssuerID(), "retiring", inventory.Event{Actor: "test"}); err != nil {
						t.Fatal(err)
					}
				}},
				{name: "issuer retired", urgent: true, setup: func(t *testing.T, _ *inventory.Certificate) {
					if err := e.store.UpdateIssuerStatus(ctx, e.ca.IssuerID(), ca.StatusRetired, inventory.Event{Actor: "test"}); err != nil {
						t.Fatal(err)
					}
				}},
			} {
				cert := e.issue(ctx, c, "http-01", "ari.test")[0]
				rec, err := e.store.Certificate(ctx, e.ca.IssuerID(), cert.SerialNumber.Text(16))
				if err != nil {
					t.Fatal(err)
				}
				if tc.setup != nil {
					tc.setup(t, rec)
				}
				id, _ := acme.CertID(cert)
				base := tc.srv
				if base == "" {
					base = e.srv.URL
				}
				win := e.renewalInfoAt(t, base, id)
				if urgent := !win.Start.After(time.Now()); urgent != tc.urgent {
					t.Fatalf("%s: window %v..%v, urgent %v, want %v", tc.name, win.Start, win.End, urgent, tc.urgent)
				}
				if !win.End.After(win.Start) {
					t.Fatalf("%s: window %v..%v ends before it starts", tc.name, win.Start, win.End)
				}
				// Undo the issuer status for the next case.
				if err := e.store.UpdateIssuerStatus(ctx, e.ca.IssuerID(), ca.StatusActive, inventory.Event{Actor: "test"}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func (e *testEnv) renewalInfoAt(t *testing.T, base, id string) window {
	t.Helper()
	resp, err := e.srv.Client().Get(base + "/acme/default/renewal-info/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ SuggestedWindow window }
	if resp.StatusCode != 200 {
		t.Fatalf("renewal-info status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.SuggestedWindow
}

// TestAlternateChains: once the store holds a second CA certificate for
// the issuing key — here cross-signed by another root — the download
// links an alternate chain, which verifies up to that root.
func TestAlternateChains(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			e := newEnv(t, st, nil)
			c := e.client(ctx)
			o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "alt.test"}})
			if err != nil {
				t.Fatal(err)
			}
			o = e.solve(ctx, c, o, "http-01")
			ders, certURL, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr(t, newKey(t), "alt.test"), true)
			if err != nil {
				t.Fatal(err)
			}
			if alts, err := c.ListCertAlternates(ctx, certURL); err != nil || len(alts) != 0 {
				t.Fatalf("alternates with one issuer certificate = %v, %v; want none", alts, err)
			}

			crossRoot, crossIssuing := e.crossSign(t)
			alts, err := c.ListCertAlternates(ctx, certURL)
			if err != nil || len(alts) != 1 || alts[0] != certURL+"/1" {
				t.Fatalf("alternates = %v, %v; want [%s/1]", alts, err, certURL)
			}
			alt, err := c.FetchCert(ctx, alts[0], true)
			if err != nil || len(alt) != 2 {
				t.Fatalf("FetchCert(alternate) = %d certificates, %v; want leaf and cross certificate", len(alt), err)
			}
			if string(alt[0]) != string(ders[0]) || string(alt[1]) != string(crossIssuing.Raw) {
				t.Fatal("the alternate chain is not the same leaf over the cross-signed issuer")
			}
			leaf, _ := x509.ParseCertificate(alt[0])
			roots, inter := x509.NewCertPool(), x509.NewCertPool()
			roots.AddCert(crossRoot)
			inter.AddCert(crossIssuing)
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "alt.test", Roots: roots, Intermediates: inter}); err != nil {
				t.Fatalf("alternate chain does not verify to the cross root: %v", err)
			}
			// The alternate links back to the default chain; there is no /2.
			if back, err := c.ListCertAlternates(ctx, alts[0]); err != nil || len(back) != 1 || back[0] != certURL {
				t.Fatalf("alternates of the alternate = %v, %v; want [%s]", back, err, certURL)
			}
			resp, body := e.send(t, rawReq{url: certURL + "/2", kid: accountURL(ctx, t, c), nonce: e.nonce(t), key: c.Key})
			wantProblem(t, problemOf(resp, body), "malformed", http.StatusNotFound)
			// Another account cannot fetch it.
			stranger := e.client(ctx)
			if _, err := stranger.FetchCert(ctx, alts[0], true); err == nil {
				t.Fatal("another account fetched the alternate chain")
			}
			// ARI still finds the certificate with two issuer records for one key.
			id, _ := acme.CertID(leaf)
			if win := e.renewalInfo(t, id); !win.Start.After(time.Now()) {
				t.Fatalf("window %v for a fresh certificate", win)
			}
		})
	}
}

// crossSign makes a new root and a certificate for the CA's issuing key
// signed by it, and records both in the store.
func (e *testEnv) crossSign(t *testing.T) (root, cross *x509.Certificate) {
	t.Helper()
	ctx := ctxT(t)
	issuing := e.ca.Chain()[0]
	rootKey := newKey(t)
	now := time.Now()
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Cross Root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId: []byte{1, 2, 3, 4}}
	der, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ = x509.ParseCertificate(der)
	crossTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), RawSubject: issuing.RawSubject, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId: issuing.SubjectKeyId}
	der, err = x509.CreateCertificate(rand.Reader, crossTmpl, root, issuing.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	cross, _ = x509.ParseCertificate(der)
	for _, is := range []*inventory.Issuer{
		{ID: "cross-root", IsRoot: true, Subject: root.Subject.String(), NotBefore: root.NotBefore, NotAfter: root.NotAfter, DER: root.Raw, Status: "active"},
		{ID: "cross-issuing", ParentID: "cross-root", Subject: cross.Subject.String(), NotBefore: cross.NotBefore, NotAfter: cross.NotAfter,
			DER: cross.Raw, Status: "active"},
	} {
		if err := e.store.PutIssuer(ctx, is, inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	return root, cross
}

// TestValidationSurvivesRestart: a challenge left processing by a
// stopped server is claimed by exactly one of two new replicas and
// validated.
func TestValidationSurvivesRestart(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			e := newEnv(t, st, nil)
			c := e.client(ctx)
			o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "restart.test"}})
			if err != nil {
				t.Fatal(err)
			}
			z, err := c.GetAuthorization(ctx, o.AuthzURLs[0])
			if err != nil {
				t.Fatal(err)
			}
			var ch *xacme.Challenge
			for _, x := range z.Challenges {
				if x.Type == "http-01" {
					ch = x
				}
			}
			v, _ := c.HTTP01ChallengeResponse(ch.Token)
			e.tokens.Store(ch.Token, v)
			// The old server accepted it and stopped before validating.
			if err := e.store.UpdateACMEChallenge(ctx, path.Base(ch.URI), []string{"pending"}, inventory.ACMEChallengeUpdate{Status: "processing"}); err != nil {
				t.Fatal(err)
			}
			// Two replicas start at once, late enough that the challenge is stale.
			later := func() time.Time { return time.Now().Add(10 * time.Minute) }
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() { e.replica(t, func(o *acme.Options) { o.Now = later }) })
			}
			wg.Wait()
			if _, err := c.WaitAuthorization(ctx, o.AuthzURLs[0]); err != nil {
				t.Fatalf("WaitAuthorization after restart: %v", err)
			}
			evs, err := e.store.Events(ctx, inventory.EventFilter{Action: "acme.challenge.validate", Object: "acme-challenge:" + path.Base(ch.URI)})
			if err != nil || len(evs) != 1 || evs[0].Outcome != "ok" {
				t.Fatalf("validation events = %+v, %v; want one ok (one replica claims it)", evs, err)
			}
			if _, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr(t, newKey(t), "restart.test"), false); err != nil {
				t.Fatalf("finalize after a recovered validation: %v", err)
			}
		})
	}
}

// TestMetricsTermsAndAudit: the directory shows the terms of service;
// orders, validations and problems are counted; order creation,
// finalization and challenge results are in the audit log.
func TestMetricsTermsAndAudit(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	reg := prometheus.NewRegistry()
	e := newEnv(t, inventorytest.SQLite(t), func(o *acme.Options) {
		o.Registry = reg
		o.TermsOfService = "https://ca.example/tos"
	})
	c := e.client(ctx)
	d, err := c.Discover(ctx)
	if err != nil || d.Terms != "https://ca.example/tos" {
		t.Fatalf("directory terms = %q, %v", d.Terms, err)
	}
	e.issue(ctx, c, "http-01", "m.test")
	failedChallenge(t, e, c, "bad.test", func(tok, _ string) { e.tokens.Store(tok, "wrong") })
	_, _ = e.postOrder(ctx, c, map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "not a name"}}})

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"mica_acme_orders_total,status=pending":                             2,
		"mica_acme_orders_total,status=ready":                               1,
		"mica_acme_orders_total,status=processing":                          1,
		"mica_acme_orders_total,status=valid":                               1,
		"mica_acme_validations_total,result=valid,type=http-01":             1,
		"mica_acme_validations_total,result=incorrectResponse,type=http-01": 1,
		"mica_acme_problems_total,type=rejectedIdentifier":                  1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	acct := accountURL(ctx, t, c)
	for _, tc := range []struct {
		action, outcome string
		n               int
	}{
		{"acme.order.create", "ok", 2},
		{"acme.order.finalize", "ok", 1},
		{"acme.challenge.validate", "ok", 1},
		{"acme.challenge.validate", "denied", 1},
	} {
		evs, err := e.store.Events(ctx, inventory.EventFilter{Action: tc.action, Actor: acct})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range evs {
			if ev.Outcome == tc.outcome && ev.Protocol == "acme" {
				n++
			}
		}
		if n != tc.n {
			t.Errorf("%d %s events with outcome %s by the account, want %d", n, tc.action, tc.outcome, tc.n)
		}
	}
}
