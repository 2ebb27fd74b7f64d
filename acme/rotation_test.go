package acme_test

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestARIEarlyMigration: with key_policy.early_migration set, the
// certificates of an issuer superseded by a rotation get a renewal slot
// inside the migration period after the new issuer activated — spread by
// serial, the same on every poll — instead of all at once.
func TestARIEarlyMigration(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			e := newEnv(t, st, nil)
			const period = 30 * 24 * time.Hour
			e.ca.SetEarlyMigration(period)
			c := e.client(ctx)
			own, err := e.store.Issuer(ctx, e.ca.IssuerID())
			if err != nil {
				t.Fatal(err)
			}
			activated := own.NotBefore.Add(time.Hour)
			e.putIssuer(t, "next-issuing-ca", own.ParentID, activated)
			rotated := e.replica(t, func(o *acme.Options) { o.CA = rotatedCA{e.ca, "next-issuing-ca"} })

			starts := map[time.Time]bool{}
			for _, host := range []string{"m1.test", "m2.test", "m3.test"} {
				cert := e.issue(ctx, c, "http-01", host)[0]
				id, _ := acme.CertID(cert)
				normal := e.renewalInfo(t, id)
				win := e.renewalInfoAt(t, rotated.URL, id)
				again := e.renewalInfoAt(t, rotated.URL, id)
				if !win.Start.Equal(again.Start) || !win.End.Equal(again.End) {
					t.Errorf("%s: window moved between polls: %v..%v then %v..%v", host, win.Start, win.End, again.Start, again.End)
				}
				// The expected window, computed here from the documented
				// rule rather than by the code under test: the normal
				// window is the middle of the last third of the lifetime,
				// the migration slot is at activated + frac*0.9*period
				// (frac from the serial's SHA-256), a tenth of the period
				// long, and the earlier of the two wins.
				life := cert.NotAfter.Sub(cert.NotBefore)
				want, wantEnd := cert.NotAfter.Add(-life/3), cert.NotAfter.Add(-life/6)
				if ms := activated.Add(slotOffset(cert.SerialNumber.Text(16), period)); ms.Before(want) {
					want, wantEnd = ms, ms.Add(period/10)
				}
				if !closeTo(win.Start, want) || !closeTo(win.End, wantEnd) {
					t.Errorf("%s: window %v..%v, want %v..%v (normal %v)", host, win.Start, win.End, want, wantEnd, normal.Start)
				}
				if win.Start.After(normal.Start) {
					t.Errorf("%s: migration window %v is later than the normal one %v", host, win.Start, normal.Start)
				}
				if win.Start.Before(activated.Truncate(time.Second)) || win.End.After(activated.Add(period)) {
					t.Errorf("%s: window %v..%v outside the migration period from %v", host, win.Start, win.End, activated)
				}
				starts[win.Start] = true
			}
			// Spread: the slots are a function of the serial. Fixed
			// vectors (offsets in whole seconds after activation for a
			// 30-day period, worked out from SHA-256 of the serial with
			// exact arithmetic) pin the rule down.
			for serial, offset := range map[string]time.Duration{"1": 979832, "2": 1935956, "3": 711033, "4": 684664} {
				s, e := acme.MigrationWindow(activated, period, serial)
				if got := s.Sub(activated); got < offset*time.Second || got >= (offset+1)*time.Second || e.Sub(s) != period/10 {
					t.Errorf("MigrationWindow(%s) = %v..%v, want a tenth of the period from %v after activation", serial, s, e, offset*time.Second)
				}
				if off := slotOffset(serial, period); off.Truncate(time.Second) != offset*time.Second {
					t.Errorf("slotOffset(%s) = %v, want %v", serial, off, offset*time.Second)
				}
				starts[s] = true
			}
			if len(starts) < 5 {
				t.Errorf("slots are not spread by serial: %d distinct starts", len(starts))
			}
		})
	}
}

// slotOffset is the documented migration slot of serial (lower-case hex
// as the inventory keeps it): the first eight bytes of its SHA-256, as a
// fraction of 2^64-1, times nine tenths of period. Exact rational
// arithmetic, so it is not the float code under test written twice.
func slotOffset(serial string, period time.Duration) time.Duration {
	h := sha256.Sum256([]byte(serial))
	frac := new(big.Rat).SetFrac(new(big.Int).SetBytes(h[:8]), new(big.Int).SetUint64(^uint64(0)))
	off := frac.Mul(frac, big.NewRat(9*int64(period), 10))
	return time.Duration(new(big.Int).Quo(off.Num(), off.Denom()).Int64())
}

// closeTo compares an RFC 3339 time from the wire (whole seconds) with an
// exact expectation: the float code may round a nanosecond either way.
func closeTo(wire, want time.Time) bool {
	d := wire.Sub(want.Truncate(time.Second))
	return d >= -time.Second && d <= time.Second
}

// TestAlternateChainsServingOnly: a second certificate for the issuing
// key is offered as an alternate chain only once it is serving — not
// while it is scheduled for later.
func TestAlternateChainsServingOnly(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			e := newEnv(t, st, nil)
			c := e.client(ctx)
			o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "serving.test"}})
			if err != nil {
				t.Fatal(err)
			}
			o = e.solve(ctx, c, o, "http-01")
			_, certURL, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr(t, newKey(t), "serving.test"), true)
			if err != nil {
				t.Fatal(err)
			}
			e.recertify(t, "later", time.Now().Add(time.Hour))
			if alts, err := c.ListCertAlternates(ctx, certURL); err != nil || len(alts) != 0 {
				t.Fatalf("alternates with a re-certification scheduled for later = %v, %v; want none", alts, err)
			}
			e.recertify(t, "now", time.Now().Add(-time.Minute))
			if alts, err := c.ListCertAlternates(ctx, certURL); err != nil || len(alts) != 1 {
				t.Fatalf("alternates with a serving re-certification = %v, %v; want one", alts, err)
			}
		})
	}
}

// recertify records a root "{tag}-root" and a certificate for the CA's
// issuing key under it, valid from notBefore.
func (e *testEnv) recertify(t *testing.T, tag string, notBefore time.Time) {
	t.Helper()
	ctx := ctxT(t)
	issuing := e.ca.Chain()[0]
	rootKey := newKey(t)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: tag + " root"}, NotBefore: notBefore,
		NotAfter: notBefore.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: []byte(tag)}
	der, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), RawSubject: issuing.RawSubject, NotBefore: notBefore,
		NotAfter: notBefore.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: issuing.SubjectKeyId}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, root, issuing.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	for _, is := range []*inventory.Issuer{
		{ID: tag + "-root", IsRoot: true, Subject: root.Subject.String(), NotBefore: root.NotBefore, NotAfter: root.NotAfter, DER: root.Raw, Status: "active"},
		{ID: tag + "-issuing", ParentID: tag + "-root", Subject: cert.Subject.String(), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.Raw, Status: "active"},
	} {
		if err := e.store.PutIssuer(ctx, is, inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
}
