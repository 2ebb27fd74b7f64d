package acme_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestRevocationAuthority: RFC 8555 section 7.6. An account that did not
// order a certificate may revoke it only with current authorizations for
// every identifier in it (a wildcard needs the wildcard's); a certificate
// naming anything ACME cannot validate is out of its reach. The
// certificate's own key may always revoke.
func TestRevocationAuthority(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	e := newEnv(t, inventorytest.SQLite(t), nil)

	// alice orders a wildcard; bob validates the plain names; carol the
	// wildcard itself.
	alice, bob, carol, stranger := e.client(ctx), e.client(ctx), e.client(ctx), e.client(ctx)
	wild := e.issue(ctx, alice, "dns-01", "*.w.test")[0]
	e.issue(ctx, bob, "http-01", "w.test", "b.test")
	e.issue(ctx, carol, "dns-01", "*.w.test")

	// Certificates issued outside ACME (the CLI), as an operator would.
	cnOnlyKey := newKey(t)
	cnOnly := e.cliIssue(ctx, cnOnlyKey, "device", pkix.Name{CommonName: "Device 42"}, nil, nil)
	foreignCN := e.cliIssue(ctx, newKey(t), "device", pkix.Name{CommonName: "other.test"}, []string{"b.test"}, nil)
	withURI := e.cliIssue(ctx, newKey(t), "client", pkix.Name{}, []string{"b.test"}, []string{"spiffe://b.test/svc"})
	covered := e.cliIssue(ctx, newKey(t), "server", pkix.Name{CommonName: "b.test"}, []string{"b.test", "w.test"}, nil)

	for _, tc := range []struct {
		name string
		by   *xacme.Client
		cert *x509.Certificate
		ok   bool
	}{
		{"no SANs, fresh account", stranger, cnOnly, false},
		{"no SANs, account with authorizations", bob, cnOnly, false},
		{"a name the account has not validated (the CA copied the CN into the SANs)", bob, foreignCN, false},
		{"a URI SAN", bob, withURI, false},
		{"wildcard, only the plain name's authorization", bob, wild, false},
		{"fresh account, ordinary names", stranger, covered, false},
		{"authorizations for every name", bob, covered, true},
		{"wildcard, the wildcard's authorization", carol, wild, true},
	} {
		err := tc.by.RevokeCert(ctx, nil, tc.cert.Raw, xacme.CRLReasonUnspecified)
		if tc.ok {
			if err != nil {
				t.Errorf("%s: %v, want revoked", tc.name, err)
			}
		} else {
			var ae *xacme.Error
			if !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:unauthorized" || ae.StatusCode != http.StatusForbidden {
				t.Errorf("%s: %v, want unauthorized (403)", tc.name, err)
			}
		}
		rec, err := e.store.Certificate(ctx, e.ca.IssuerID(), tc.cert.SerialNumber.Text(16))
		if err != nil {
			t.Fatal(err)
		}
		if revoked := rec.State == inventory.StateRevoked; revoked != tc.ok {
			t.Errorf("%s: state %s after the request", tc.name, rec.State)
		}
	}
	// The certificate's own key may revoke even a SAN-less certificate.
	if err := stranger.RevokeCert(ctx, cnOnlyKey, cnOnly.Raw, xacme.CRLReasonKeyCompromise); err != nil {
		t.Fatalf("revocation signed by the certificate key: %v", err)
	}
}

// cliIssue issues a certificate through the CA directly, as `mica cert
// issue` does, under a CA profile with the given subject and SANs.
func (e *testEnv) cliIssue(ctx context.Context, key crypto.Signer, profile string, subject pkix.Name, dns, uris []string) *x509.Certificate {
	e.t.Helper()
	tmpl := &x509.CertificateRequest{Subject: subject, DNSNames: dns}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			e.t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		e.t.Fatal(err)
	}
	iss, err := e.ca.Issue(ctx, ca.Request{CSR: der, Profile: profile, Requester: "cli:test", Protocol: "cli", Source: "127.0.0.1"})
	if err != nil {
		e.t.Fatalf("Issue %s %v %v: %v", profile, subject, dns, err)
	}
	return iss.Certificate
}

// TestRevocationNeedsCurrentAuthorizations: authorizations past their
// expiry no longer let an account revoke what it did not order.
func TestRevocationNeedsCurrentAuthorizations(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	var skew atomic.Int64 // added to the ACME server's clock
	e := newEnv(t, inventorytest.SQLite(t), func(o *acme.Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	bob := e.client(ctx)
	e.issue(ctx, bob, "http-01", "x.test")
	first := e.cliIssue(ctx, newKey(t), "server", pkix.Name{}, []string{"x.test"}, nil)
	second := e.cliIssue(ctx, newKey(t), "server", pkix.Name{}, []string{"x.test"}, nil)
	if err := bob.RevokeCert(ctx, nil, first.Raw, xacme.CRLReasonUnspecified); err != nil {
		t.Fatalf("revocation with a current authorization: %v", err)
	}
	skew.Store(int64(e.opts.OrderLifetime + 25*time.Hour)) // past the authorization's expiry
	wantProblem(t, bob.RevokeCert(ctx, nil, second.Raw, xacme.CRLReasonUnspecified), "unauthorized", http.StatusForbidden)
}
