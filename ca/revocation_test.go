package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// revEnv is a CA with the revocation service on a real store and the
// real clock (the store stamps rows with its own clock).
type revEnv struct {
	ca    *CA
	store *inventory.Store
	init  *InitResult
}

func newRevEnv(t testing.TB, st *inventory.Store, cfg RevocationConfig) *revEnv {
	t.Helper()
	ctx := context.Background()
	keys := newFakeKeys()
	res, err := Init(ctx, InitOptions{Store: st, Keys: keys, RootKeyType: hsm.ECP256, IssuingKeyType: hsm.ECP256,
		URLs: testURLs, Actor: "test", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Options{Store: st, Keys: keys, URLs: testURLs, Logger: discardLogger(),
		RevocationStore: st, Revocation: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return &revEnv{ca: c, store: st, init: res}
}

func (e *revEnv) issue(t testing.TB, key crypto.Signer) *Issued {
	t.Helper()
	if key == nil {
		key = subjectKey(t, "EC-P256")
	}
	iss, err := e.ca.Issue(context.Background(), Request{CSR: makeCSR(t, key, "a.test", "a.test"), Profile: "server", Requester: "acct-1", Protocol: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func (e *revEnv) ocsp(t testing.TB, leaf *x509.Certificate, h crypto.Hash, nonce bool) (OCSPAnswer, *ocsp.Response) {
	t.Helper()
	der, err := ocsp.CreateRequest(leaf, e.init.Issuing, &ocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	if nonce { // append a nonce extension by re-encoding with ours
		der = withNonce(t, der)
	}
	a := e.ca.RespondOCSP(context.Background(), der)
	if a.Status == "malformedRequest" || a.Status == "internalError" || a.Status == "tryLater" || a.Status == "unauthorized" {
		return a, nil
	}
	resp, err := ocsp.ParseResponseForCert(a.DER, leaf, e.init.Issuing)
	if err != nil {
		t.Fatalf("ParseResponse: %v", err)
	}
	return a, resp
}

func TestRevocationLifecycle(t *testing.T) {
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, delegated := range []bool{false, true} {
				e := newRevEnv(t, st, RevocationConfig{DelegatedResponder: delegated})
				ctx := context.Background()
				iss := e.issue(t, nil)
				leaf := iss.Certificate
				before := e.ca.RevocationStats()
				a, resp := e.ocsp(t, leaf, crypto.SHA1, false)
				if resp.Status != ocsp.Good || !a.Cacheable || e.ca.RevocationStats().OCSPLiveSigned != before.OCSPLiveSigned {
					t.Fatalf("OCSP after issue = %v cacheable=%v; want good from the pre-signed response", resp.Status, a.Cacheable)
				}
				if delegated && (resp.Certificate == nil || resp.Certificate.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning) {
					t.Fatalf("delegated responder: response carries %v, want a responder certificate", resp.Certificate)
				}
				a, resp = e.ocsp(t, leaf, crypto.SHA256, true)
				if resp.Status != ocsp.Good || a.Cacheable {
					t.Fatalf("nonce OCSP = %v cacheable=%v; want good, not cacheable", resp.Status, a.Cacheable)
				}

				if _, err := e.ca.Revoke(ctx, RevokeRequest{Serial: leaf.SerialNumber.Text(16), Reason: "keyCompromise", Actor: "t", Protocol: "cli"}); err != nil {
					t.Fatal(err)
				}
				_, resp = e.ocsp(t, leaf, crypto.SHA1, false)
				if resp.Status != ocsp.Revoked || resp.RevocationReason != ocsp.KeyCompromise {
					t.Fatalf("OCSP after revoke = %v reason %d; want revoked keyCompromise", resp.Status, resp.RevocationReason)
				}
				if err := e.ca.GenerateCRLs(ctx, ""); err != nil {
					t.Fatal(err)
				}
				c1, err := e.ca.CRL(ctx, e.ca.IssuerID()+".crl")
				if err != nil {
					t.Fatal(err)
				}
				rl, err := x509.ParseRevocationList(c1.DER)
				if err != nil {
					t.Fatal(err)
				}
				if err := rl.CheckSignatureFrom(e.init.Issuing); err != nil {
					t.Fatal(err)
				}
				if len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 ||
					rl.RevokedCertificateEntries[0].ReasonCode != 1 {
					t.Fatalf("CRL entries = %+v, want the revoked serial with keyCompromise", rl.RevokedCertificateEntries)
				}
				_ = e.ca.GenerateCRLs(ctx, e.ca.IssuerID())
				c2, _ := e.ca.CRL(ctx, e.ca.IssuerID()+".crl")
				if c2.Number <= c1.Number {
					t.Errorf("CRL number %d after %d, want increasing", c2.Number, c1.Number)
				}
				// Each env has its own issuer; clean up for the next loop by
				// leaving the store as is (issuer IDs are unique per Init).
				if delegated {
					break
				}
				st = inventorytest.SQLite(t)
				if name == "postgres" {
					st = inventorytest.Postgres(t)
				}
			}
		})
	}
}

func TestOCSPUnknownUnauthorizedMalformed(t *testing.T) {
	e := newRevEnv(t, inventorytest.SQLite(t), RevocationConfig{})
	other := newRevEnv(t, inventorytest.SQLite(t), RevocationConfig{})
	foreign := other.issue(t, nil).Certificate
	// The same CertID, but for a serial our issuer never issued.
	tmpl := *foreign
	der, _ := ocsp.CreateRequest(&tmpl, e.init.Issuing, nil)
	if a := e.ca.RespondOCSP(context.Background(), der); a.Status != "unauthorized" || string(a.DER) != "\x30\x03\x0a\x01\x06" {
		t.Errorf("unknown serial: status %q, want unauthorized", a.Status)
	}
	der, _ = ocsp.CreateRequest(foreign, other.init.Issuing, nil)
	if a := e.ca.RespondOCSP(context.Background(), der); a.Status != "unauthorized" || string(a.DER) != "\x30\x03\x0a\x01\x06" {
		t.Errorf("foreign issuer: status %q, want unauthorized", a.Status)
	}
	for _, bad := range [][]byte{nil, []byte("garbage"), {0x30, 0x80}, der[:len(der)-1]} {
		if a := e.ca.RespondOCSP(context.Background(), bad); a.Status != "malformedRequest" {
			t.Errorf("RespondOCSP(%x) = %q, want malformedRequest", bad, a.Status)
		}
	}
}

func TestCRLBatchingUnderBurst(t *testing.T) {
	st := inventorytest.SQLite(t)
	e := newRevEnv(t, st, RevocationConfig{CRLDelay: time.Hour, SweepEvery: time.Hour})
	// The batch closes when the test says so, not when a delay runs out:
	// the first revocation opens it (the worker asks for a timer), the
	// whole burst goes in, and only then does the timer fire. Later
	// timers (a kick left over from the burst) never fire.
	opened := make(chan struct{}, 1)
	closeBatch := make(chan time.Time, 1)
	var timers atomic.Int32
	e.ca.hooks.crlBatch = func(time.Duration) <-chan time.Time {
		if timers.Add(1) > 1 {
			return nil
		}
		opened <- struct{}{}
		return closeBatch
	}
	var serials []string
	for range 50 {
		serials = append(serials, e.issue(t, nil).Certificate.SerialNumber.Text(16))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.ca.RunRevocation(ctx); close(done) }()
	// The start-up sweep signs the first CRL; wait for it rather than
	// guessing how long it takes.
	for deadline := time.Now().Add(10 * time.Second); e.ca.RevocationStats().CRLsSigned < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the start-up sweep signed no CRL")
		}
	}
	start := e.ca.RevocationStats().CRLsSigned
	var wg sync.WaitGroup
	for _, s := range serials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.ca.Revoke(ctx, RevokeRequest{Serial: s, Reason: "superseded", Actor: "t"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("50 revocations opened no CRL batch")
	}
	if n := e.ca.RevocationStats().CRLsSigned - start; n != 0 {
		t.Fatalf("%d CRLs signed while the batch was open, want 0: revocations must wait for the batch", n)
	}
	closeBatch <- time.Now()
	deadline := time.Now().Add(20 * time.Second)
	for {
		crl, err := e.ca.CRL(ctx, e.ca.IssuerID()+".crl")
		if err == nil && crl.Entries == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRL never listed all 50 revocations: %+v %v", crl, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if n := e.ca.RevocationStats().CRLsSigned - start; n != 1 {
		t.Errorf("50 revocations cost %d CRL signatures, want exactly 1", n)
	}
}

func TestBlockedKeyRefusedAndIncident(t *testing.T) {
	st := inventorytest.SQLite(t)
	e := newRevEnv(t, st, RevocationConfig{CRLShards: 4})
	ctx := context.Background()
	key := subjectKey(t, "EC-P256")
	a, b := e.issue(t, key), e.issue(t, key)
	other := e.issue(t, nil)
	if cdp := a.Certificate.CRLDistributionPoints; len(cdp) != 1 || !strings.HasPrefix(cdp[0], testURLs.CRLBase+e.ca.IssuerID()+"-") {
		t.Errorf("CDP with 4 shards = %v, want the shard URL", cdp)
	}
	ir := IncidentRequest{PublicKeySHA256: a.Record.PublicKeySHA256, Reason: "keyCompromise", Actor: "sec", Protocol: "cli"}
	m, err := e.ca.IncidentMatches(ctx, ir)
	if err != nil || len(m) != 2 {
		t.Fatalf("IncidentMatches = %d, %v; want 2", len(m), err)
	}
	if got, _ := st.Certificate(ctx, a.Record.IssuerID, a.Record.Serial); got.State != inventory.StateIssued {
		t.Fatal("a dry run must change nothing")
	}
	res, err := e.ca.IncidentRevoke(ctx, ir)
	if err != nil || len(res.Revoked) != 2 || len(res.BlockedKeys) != 1 || len(res.Failed) != 0 {
		t.Fatalf("IncidentRevoke = %+v, %v", res, err)
	}
	for _, c := range []*Issued{a, b} {
		if got, _ := st.Certificate(ctx, c.Record.IssuerID, c.Record.Serial); got.State != inventory.StateRevoked {
			t.Errorf("%s not revoked", c.Record.Serial)
		}
	}
	if got, _ := st.Certificate(ctx, other.Record.IssuerID, other.Record.Serial); got.State != inventory.StateIssued {
		t.Error("a certificate outside the selection was revoked")
	}
	evs, _ := st.Events(ctx, inventory.EventFilter{Action: "incident.revoke"})
	if len(evs) != 1 || !strings.Contains(string(evs[0].Details), a.Record.Serial) {
		t.Fatalf("incident events = %+v, want one listing the serials", evs)
	}
	_, err = e.ca.Issue(ctx, Request{CSR: makeCSR(t, key, "a.test", "a.test"), Profile: "server"})
	if KindOf(err) != ErrPolicy || !strings.Contains(UserMessage(err), "public key is blocked (compromised)") {
		t.Fatalf("Issue with a blocked key = %v, want ErrPolicy naming the block", err)
	}
	// The shard CRLs carry an IDP and list only their own serials.
	shardOf := e.ca.rev.crlShardFor(a.Certificate.SerialNumber)
	crl, err := e.ca.CRL(ctx, CRLFileName(e.ca.IssuerID(), shardOf, false))
	if err != nil {
		t.Fatal(err)
	}
	rl, _ := x509.ParseRevocationList(crl.DER)
	found := false
	for _, ent := range rl.RevokedCertificateEntries {
		found = found || ent.SerialNumber.Cmp(a.Certificate.SerialNumber) == 0
		if e.ca.rev.crlShardFor(ent.SerialNumber) != shardOf {
			t.Errorf("shard %d lists serial %x of another shard", shardOf, ent.SerialNumber)
		}
	}
	if !found || len(rl.Extensions) < 3 {
		t.Errorf("shard CRL: found=%v extensions=%d (want the entry and an IDP)", found, len(rl.Extensions))
	}
	if _, err := e.ca.IncidentMatches(ctx, IncidentRequest{Reason: "keyCompromise"}); KindOf(err) != ErrBadRevocation {
		t.Errorf("incident without a selector = %v, want ErrBadRevocation", err)
	}
}

func TestCRLFileNames(t *testing.T) {
	for _, tc := range []struct {
		id    string
		shard int
		delta bool
	}{{"issuing-2026", 0, false}, {"issuing-2026", 3, false}, {"x", 0, true}, {"ca-7", 0, false}} {
		name := CRLFileName(tc.id, tc.shard, tc.delta)
		refs := ParseCRLFileName(name)
		ok := false
		for _, r := range refs {
			ok = ok || r == (CRLRef{IssuerID: tc.id, Shard: tc.shard, Delta: tc.delta})
		}
		if !ok {
			t.Errorf("ParseCRLFileName(%q) = %+v, want %+v among them", name, refs, tc)
		}
	}
	if r := ParseCRLFileName("x.pem"); r != nil {
		t.Errorf("ParseCRLFileName(x.pem) = %v", r)
	}
}

// withNonce re-encodes a golang.org/x/crypto/ocsp request (which cannot
// carry extensions) with an RFC 9654 nonce extension.
func withNonce(t testing.TB, der []byte) []byte {
	t.Helper()
	type tbs struct {
		RequestList []asn1.RawValue
		Ext         []pkix.Extension `asn1:"explicit,tag:2,optional"`
	}
	var in struct{ TBS tbs }
	if _, err := asn1.Unmarshal(der, &in); err != nil {
		t.Fatal(err)
	}
	val, _ := asn1.Marshal([]byte("0123456789abcdef"))
	in.TBS.Ext = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}, Value: val}}
	out, err := asn1.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
