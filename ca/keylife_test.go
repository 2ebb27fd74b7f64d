package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"golang.org/x/crypto/ocsp"
)

var _ KeyStore = (*inventory.Store)(nil)
var _ KeyUsageStore = (*inventory.Store)(nil)

// keyEnv is a CA on a real store whose backend is metered.
type keyEnv struct {
	st    *inventory.Store
	keys  *fakeKeys
	meter *MeteredKeys
	init  *InitResult
	who   Actor
}

func newKeyEnv(t testing.TB, st *inventory.Store) *keyEnv {
	t.Helper()
	ctx := context.Background()
	e := &keyEnv{st: st, keys: newFakeKeys(), who: Actor{Name: "test"}}
	var err error
	e.init, err = Init(ctx, InitOptions{Store: st, Keys: e.keys, RootKeyType: hsm.ECP256, IssuingKeyType: hsm.ECP256,
		URLs: testURLs, Actor: "test", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SyncKeys(ctx, st, e.keys, KeyPolicy{Cryptoperiods: map[string]time.Duration{KeyClassIssuing: 365 * day}}, e.who); err != nil {
		t.Fatal(err)
	}
	e.meter, err = NewMeteredKeys(ctx, e.keys, st, MeterOptions{FlushEvery: -1, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.meter.Close() })
	return e
}

func (e *keyEnv) ca(t *testing.T) *CA {
	t.Helper()
	c, err := New(context.Background(), Options{Store: e.st, Keys: e.meter, URLs: testURLs, Logger: discardLogger(), RevocationStore: e.st})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func issueOne(t *testing.T, c *CA) (*Issued, error) {
	t.Helper()
	return c.Issue(context.Background(), Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "a.test", "a.test"), Profile: "server", Requester: "t", Protocol: "cli"})
}

// TestMeteredKeysCountAndRetire: every issuance costs the issuing key
// exactly two signatures (the certificate and its pre-signed OCSP
// response), the counts reach the store as increments, a retired key
// refuses to sign, and neither retire nor destroy is allowed while the
// issuer still has unexpired certificates.
func TestMeteredKeysCountAndRetire(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(testing.TB) *inventory.Store{"sqlite": inventorytest.SQLite, "postgres": inventorytest.Postgres} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newKeyEnv(t, open(t))
			c := e.ca(t)
			const n = 5
			for range n {
				if _, err := issueOne(t, c); err != nil {
					t.Fatal(err)
				}
			}
			uri := e.init.IssuingKeyURI
			if got := e.meter.Pending(uri); got != 2*n {
				t.Errorf("pending signatures = %d, want %d (certificate + OCSP per issuance)", got, 2*n)
			}
			if err := e.meter.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			k, err := e.st.Key(ctx, e.init.IssuingIssuer.ID)
			if err != nil {
				t.Fatal(err)
			}
			if k.Signatures != 2*n || k.FirstUsed == nil || k.LastUsed == nil || k.RotationDue == nil {
				t.Errorf("key row = %+v, want %d signatures, used range and rotation due", k, 2*n)
			}

			id := e.init.IssuingIssuer.ID
			if err := RetireKey(ctx, e.st, id, time.Now(), false, e.who); !errors.Is(err, ErrPolicy) {
				t.Errorf("RetireKey with certificates outstanding = %v, want ErrPolicy", err)
			}
			if err := RetireKey(ctx, e.st, id, time.Now(), true, e.who); err != nil {
				t.Fatalf("forced RetireKey = %v", err)
			}
			if err := e.meter.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := issueOne(t, c); !errors.Is(err, ErrKeyRetired) {
				t.Errorf("Issue with a retired key = %v, want ErrKeyRetired", err)
			}
			if _, err := e.meter.Signer(ctx, uri); !errors.Is(err, ErrKeyRetired) {
				t.Errorf("Signer for a retired key = %v, want ErrKeyRetired", err)
			}
			if err := DestroyKeyRetained(ctx, e.st, e.meter, id, KeyPolicy{}, time.Now(), e.who); !errors.Is(err, ErrPolicy) {
				t.Errorf("DestroyKey with unexpired certificates = %v, want ErrPolicy", err)
			}
			if _, err := e.keys.Signer(ctx, uri); err != nil {
				t.Errorf("a refused destroy deleted the key: %v", err)
			}
		})
	}
}

// TestRotateOnline: once a rotation is active (that a scheduled one does
// not take over before its time is TestRotateScheduled), new issuance
// uses the new key, both chains verify, the old issuer still answers OCSP,
// and it is retired (and its key can be destroyed) only after its last
// certificate expired.
func TestRotateOnline(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(testing.TB) *inventory.Store{"sqlite": inventorytest.SQLite, "postgres": inventorytest.Postgres} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRotateOnline(t, open(t))
		})
	}
}

func testRotateOnline(t *testing.T, st *inventory.Store) {
	ctx := context.Background()
	e := newKeyEnv(t, st)
	old := e.ca(t)
	oldLeaf, err := issueOne(t, old)
	if err != nil {
		t.Fatal(err)
	}
	rootSigner, err := e.keys.Signer(ctx, e.init.RootKeyURI)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Rotate(ctx, RotateOptions{Store: e.st, Keys: e.meter, RootSigner: rootSigner, NewID: "issuing-next", URLs: testURLs, Who: e.who})
	if err != nil {
		t.Fatal(err)
	}
	cur := e.ca(t)
	if cur.IssuerID() != "issuing-next" {
		t.Fatalf("after rotation the CA uses %s, want issuing-next", cur.IssuerID())
	}
	newLeaf, err := issueOne(t, cur)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.init.Root)
	for _, c := range []struct {
		leaf *x509.Certificate
		mid  *x509.Certificate
	}{{oldLeaf.Certificate, e.init.Issuing}, {newLeaf.Certificate, res.Cert}} {
		mids := x509.NewCertPool()
		mids.AddCert(c.mid)
		if _, err := c.leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: mids, DNSName: "a.test"}); err != nil {
			t.Errorf("chain via %s: %v", c.mid.Subject, err)
		}
	}
	serving, err := cur.ServingIssuers(ctx)
	if err != nil || len(serving) != 2 || serving[0].ID != "issuing-next" || serving[1].ID != e.init.IssuingIssuer.ID {
		t.Errorf("ServingIssuers during the overlap = %+v, %v; want issuing-next then the old CA", serving, err)
	}
	if err := newLeaf.Certificate.CheckSignatureFrom(res.Cert); err != nil {
		t.Errorf("new issuance not signed by the new key: %v", err)
	}
	req := ocspRequest(t, oldLeaf.Certificate, e.init.Issuing)
	if a := cur.RespondOCSP(ctx, req); a.Status != "good" {
		t.Errorf("OCSP for a certificate of the old issuer after rotation = %s, want good", a.Status)
	}
	if err := cur.GenerateCRLs(ctx, e.init.IssuingIssuer.ID); err != nil {
		t.Errorf("CRL of the old issuer after rotation: %v", err)
	} else if crl, err := cur.CRL(ctx, e.init.IssuingIssuer.ID+".crl"); err != nil || crl == nil {
		t.Errorf("the old issuer's CRL is not served after rotation: %v", err)
	}
	if ids, err := RetireIssuers(ctx, e.st, time.Now(), e.who); err != nil || len(ids) != 0 {
		t.Errorf("RetireIssuers with the old issuer's certificate outstanding = %v, %v; want none", ids, err)
	}
	after := oldLeaf.Certificate.NotAfter.Add(time.Hour)
	ids, err := RetireIssuers(ctx, e.st, after, e.who)
	if err != nil || len(ids) != 1 || ids[0] != e.init.IssuingIssuer.ID {
		t.Fatalf("RetireIssuers after expiry = %v, %v; want [%s]", ids, err, e.init.IssuingIssuer.ID)
	}
	if err := DestroyKeyRetained(ctx, e.st, e.meter, e.init.IssuingIssuer.ID, KeyPolicy{}, after, e.who); err != nil {
		t.Fatalf("DestroyKey = %v", err)
	}
	if _, err := e.keys.Signer(ctx, e.init.IssuingKeyURI); !errors.Is(err, hsm.ErrNotFound) {
		t.Errorf("the destroyed key still opens: %v", err)
	}
	k, _ := e.st.Key(ctx, e.init.IssuingIssuer.ID)
	if k.Status != inventory.KeyDestroyed || len(k.PublicKey) == 0 {
		t.Errorf("destroyed key row = %+v; want destroyed with its public key kept", k)
	}
	if err := DestroyKeyRetained(ctx, e.st, e.meter, "issuing-next", KeyPolicy{}, after, e.who); !errors.Is(err, ErrPolicy) {
		t.Errorf("DestroyKey of the active key = %v, want ErrPolicy", err)
	}
}

// TestRotateOffline: the CSR goes out, the root (elsewhere) signs it, the
// certificate comes back and takes over issuance.
func TestRotateOffline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newKeyEnv(t, inventorytest.SQLite(t))
	csr, k, err := PrepareRotation(ctx, RotateOptions{Store: e.st, Keys: e.meter, NewID: "issuing-2", Who: e.who})
	if err != nil {
		t.Fatal(err)
	}
	if k.Status != inventory.KeyPreActivation {
		t.Errorf("pending key status = %s", k.Status)
	}
	rootSigner, _ := e.keys.Signer(ctx, e.init.RootKeyURI)
	cert, err := SignIntermediate(ctx, rootSigner, e.init.Root, csr, IntermediateOptions{RootID: e.init.RootIssuer.ID, URLs: testURLs,
		Now: func() time.Time { return time.Now().Add(caBackdate) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ImportIntermediate(ctx, e.st, e.meter, cert.Raw, time.Now(), e.who); err != nil {
		t.Fatal(err)
	}
	if _, err := ImportIntermediate(ctx, e.st, e.meter, cert.Raw, time.Now(), e.who); !errors.Is(err, ErrNotFound) {
		t.Errorf("second import = %v, want ErrNotFound", err)
	}
	// Signed with notBefore = now: current at once.
	if got := e.ca(t).IssuerID(); got != "issuing-2" {
		t.Errorf("after import the CA uses %s, want issuing-2", got)
	}
}

// TestRotateScheduled: a rotation scheduled for later does not take over
// issuance before its time: the old CA issues (on a clock now and just
// before the time), and the new one once its time has come (just after);
// each certificate is signed by the CA that should have signed it.
func TestRotateScheduled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newKeyEnv(t, inventorytest.SQLite(t))
	rootSigner, err := e.keys.Signer(ctx, e.init.RootKeyURI)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	res, err := Rotate(ctx, RotateOptions{Store: e.st, Keys: e.meter, RootSigner: rootSigner, NewID: "issuing-later", URLs: testURLs, Who: e.who, At: at})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		now    time.Time
		id     string
		issuer *x509.Certificate
	}{
		{"now", time.Now(), e.init.IssuingIssuer.ID, e.init.Issuing},
		{"a minute before", at.Add(-time.Minute), e.init.IssuingIssuer.ID, e.init.Issuing},
		{"a minute after", at.Add(time.Minute), "issuing-later", res.Cert},
	} {
		now := tc.now
		c, err := New(ctx, Options{Store: e.st, Keys: e.meter, URLs: testURLs, Logger: discardLogger(), RevocationStore: e.st, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.IssuerID() != tc.id {
			t.Errorf("%s: the CA issues with %s, want %s", tc.name, c.IssuerID(), tc.id)
			continue
		}
		iss, err := issueOne(t, c)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := iss.Certificate.CheckSignatureFrom(tc.issuer); err != nil {
			t.Errorf("%s: certificate not signed by %s: %v", tc.name, tc.id, err)
		}
	}
}

func ocspRequest(t *testing.T, leaf, issuer *x509.Certificate) []byte {
	t.Helper()
	der, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestDestroyKeyRetention: a retired key is destroyable only once its
// class's retention period has passed since its retirement, on an
// injected clock; the refusal is ErrPolicy wrapping a *RetentionError
// with the date it becomes destroyable, and leaves the key retired with
// no key.destroy event. SQLite and PostgreSQL.
func TestDestroyKeyRetention(t *testing.T) {
	const day = 24 * time.Hour
	pol := KeyPolicy{Retention: map[string]time.Duration{KeyClassIssuing: 90 * day, KeyClassRoot: 365 * day,
		KeyClassOCSPResponder: 0, "broken": -day}}
	cases := []struct {
		name     string
		class    string
		retire   bool
		after    time.Duration // now = RetiredAt + after
		wantKind error         // nil: destroyed
		wantWait time.Duration // RetentionError.Destroyable - RetiredAt
	}{
		{name: "issuing inside retention", class: KeyClassIssuing, retire: true, after: 89 * day, wantKind: ErrPolicy, wantWait: 90 * day},
		{name: "issuing a second before the end", class: KeyClassIssuing, retire: true, after: 90*day - time.Second, wantKind: ErrPolicy, wantWait: 90 * day},
		{name: "issuing at the end of retention", class: KeyClassIssuing, retire: true, after: 90 * day},
		{name: "root inside retention", class: KeyClassRoot, retire: true, after: 364 * day, wantKind: ErrPolicy, wantWait: 365 * day},
		{name: "root after retention", class: KeyClassRoot, retire: true, after: 366 * day},
		{name: "zero retention: at once", class: KeyClassOCSPResponder, retire: true},
		{name: "class without a period: at once", class: KeyClassEABHMAC, retire: true},
		{name: "negative period is a configuration error", class: "broken", retire: true, after: day, wantKind: ErrConfig},
		{name: "active key", class: KeyClassOCSPResponder, wantKind: ErrPolicy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for backend, st := range inventorytest.Stores(t) {
				t.Run(backend, func(t *testing.T) {
					ctx := context.Background()
					who := Actor{Name: "test"}
					if err := st.PutKey(ctx, &inventory.Key{ID: "k", Class: tc.class, Backend: "offline", Algorithm: "EC-P256"}, inventory.Event{Actor: "test"}); err != nil {
						t.Fatal(err)
					}
					if tc.retire {
						if err := st.SetKeyStatus(ctx, "k", inventory.KeyRetired, inventory.Event{Actor: "test"}); err != nil {
							t.Fatal(err)
						}
					}
					k, err := st.Key(ctx, "k")
					if err != nil {
						t.Fatal(err)
					}
					base := time.Now()
					if k.RetiredAt != nil {
						base = *k.RetiredAt
					}
					err = DestroyKeyRetained(ctx, st, nil, "k", pol, base.Add(tc.after), who)
					destroyed, _ := st.Events(ctx, inventory.EventFilter{Action: "key.destroy"})
					if tc.wantKind == nil {
						if err != nil {
							t.Fatalf("DestroyKeyRetained(%s after retirement) = %v, want destroyed", tc.after, err)
						}
						if k, _ := st.Key(ctx, "k"); k.Status != inventory.KeyDestroyed || len(destroyed) != 1 {
							t.Errorf("after destroy: status %s, %d key.destroy events; want destroyed, 1", k.Status, len(destroyed))
						}
						return
					}
					if !errors.Is(err, tc.wantKind) {
						t.Fatalf("DestroyKeyRetained(%s after retirement) = %v, want %v", tc.after, err, tc.wantKind)
					}
					var re *RetentionError
					switch {
					case tc.wantWait != 0 && !errors.As(err, &re):
						t.Errorf("refusal %v carries no *RetentionError", err)
					case tc.wantWait != 0 && (!re.Destroyable.Equal(base.Add(tc.wantWait)) || re.Class != tc.class || re.KeyID != "k"):
						t.Errorf("RetentionError = %+v, want destroyable at %s", re, base.Add(tc.wantWait))
					case tc.wantWait != 0 && !strings.Contains(UserMessage(err), base.Add(tc.wantWait).UTC().Format(time.RFC3339)):
						t.Errorf("message %q does not name the date it becomes destroyable", UserMessage(err))
					}
					if k, _ := st.Key(ctx, "k"); k.Status == inventory.KeyDestroyed || len(destroyed) != 0 {
						t.Errorf("a refused destroy changed the key: status %s, %d key.destroy events", k.Status, len(destroyed))
					}
				})
			}
		})
	}
}
