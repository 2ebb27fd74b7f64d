package web_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/web"
)

// newUIOn is newUI over a given store (SQLite or PostgreSQL), with an
// optional server tweak.
func newUIOn(t *testing.T, s *inventory.Store, tweak func(*web.Server)) *uiEnv {
	t.Helper()
	inventorytest.Issuer(t, s, "ca")
	e := &uiEnv{store: s}
	for _, cn := range []string{"alpha.test", "beta.test"} {
		e.certs = append(e.certs, inventorytest.Issue(t, s, inventory.Certificate{IssuerID: "ca", Serial: inventorytest.RandomSerial(t),
			CommonName: cn, SANs: []string{"dns:" + cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 24 * time.Hour),
			Profile: "server", Protocol: "acme"}))
	}
	for name, role := range map[string]string{"ada": "operator", "vic": "viewer", "aud": "auditor", "root": "admin"} {
		h, err := web.HashPassword("correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(context.Background(), inventory.User{Name: name, Role: role, PasswordHash: h}, inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	w := web.New(s, &fakeRevoker{store: s}, slog.New(slog.DiscardHandler)).WithJobChecker(loopbackOnly)
	if tweak != nil {
		tweak(w)
	}
	r := chi.NewRouter()
	w.Mount(r, chi.NewRouter())
	e.srv = httptest.NewTLSServer(r)
	t.Cleanup(e.srv.Close)
	return e
}

// eachStore runs fn against SQLite and, when configured, PostgreSQL.
func eachStore(t *testing.T, fn func(t *testing.T, s *inventory.Store)) {
	t.Helper()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, s)
		})
	}
}

// putSubCA stores an issuing CA "id" under parent with a real CA
// certificate and returns its DER.
func putSubCA(t *testing.T, s *inventory.Store, id, parent, keyURI, status string) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Issuing " + id},
		NotBefore: time.Now().Add(-time.Hour).Truncate(time.Second), NotAfter: time.Now().Add(5 * 365 * 24 * time.Hour).Truncate(time.Second),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	iss := &inventory.Issuer{ID: id, ParentID: parent, Subject: "CN=Issuing " + id, KeyURI: keyURI, KeyType: "EC-P256",
		NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter, Status: status, DER: der}
	if err := s.PutIssuer(context.Background(), iss, inventory.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	return der
}

// Issuers page: each issuer joined with its key record; protection comes
// from the recorded token attributes, not the URI prefix.
func TestUIIssuersKeyRecords(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		e := newUIOn(t, s, nil)
		putSubCA(t, s, "sub", "ca", "pkcs11:object=sub", "active")
		act := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
		for _, k := range []inventory.Key{
			{ID: "sub-key", Class: "issuing", Backend: "pkcs11", URI: "pkcs11:object=sub", Algorithm: "EC-P256", IssuerID: "sub",
				Protection:   []byte(`{"backend":"pkcs11","on_token":true,"sensitive":true,"never_extractable":true,"always_sensitive":true}`),
				Cryptoperiod: 365 * 24 * time.Hour, ActivateAt: act},
			// A PKCS#11 URI whose recorded attributes say extractable:
			// the page must not call it HSM-protected from the prefix.
			{ID: "ca-key", Class: "root", Backend: "pkcs11", URI: "pkcs11:object=ca", Algorithm: "EC-P256", IssuerID: "ca",
				Protection: []byte(`{"backend":"pkcs11","on_token":true,"sensitive":false,"extractable":true}`), Cryptoperiod: 30 * 24 * time.Hour,
				ActivateAt: act},
		} {
			if err := s.PutKey(ctx, &k, inventory.Event{Actor: "test"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetKeyStatus(ctx, "ca-key", inventory.KeyRetired, inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		putSubCA(t, s, "late", "ca", "", "active")
		past := time.Now().Add(-24 * time.Hour)
		if err := s.PutKey(ctx, &inventory.Key{ID: "late-key", Class: "issuing", Backend: "softkms", Algorithm: "EC-P256", IssuerID: "late",
			Protection: []byte(`{"backend":"softkms","encrypted":true}`), RotationDue: &past}, inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		vic, _ := e.client(t, "vic", "correct horse battery")
		code, body, _ := get(t, vic, e.srv.URL+"/ui/issuers")
		if code != 200 {
			t.Fatalf("issuers page = %d", code)
		}
		sub := rowOf(body, `id="issuer-sub"`)
		for _, want := range []string{"<td>ca</td>", "<td>active</td>", "<td>2026-01-10</td>", "<td>2027-01-10</td>",
			"HSM: on token, sensitive, never extractable", "365 days", "sub-key"} {
			if !strings.Contains(sub, want) {
				t.Errorf("issuer sub row lacks %q:\n%s", want, sub)
			}
		}
		root := rowOf(body, `id="issuer-ca"`)
		for _, want := range []string{"(root)", "extractable=true", "30 days", time.Now().UTC().Format("2006-01-02")} {
			if !strings.Contains(root, want) {
				t.Errorf("issuer ca row lacks %q:\n%s", want, root)
			}
		}
		if late := rowOf(body, `id="issuer-late"`); !strings.Contains(late, "overdue") || !strings.Contains(late, "software, encrypted file") {
			t.Errorf("issuer late row lacks overdue rotation or protection:\n%s", late)
		}
		if strings.Contains(root, "overdue") {
			t.Errorf("retired key shown as overdue:\n%s", root)
		}
		if strings.Contains(root, "never extractable") {
			t.Errorf("root key protection guessed from its URI:\n%s", root)
		}
	})
}

// rowOf returns the table row whose tag contains marker.
func rowOf(body, marker string) string {
	i := strings.Index(body, marker)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], "</tr>")
	if j < 0 {
		return body[i:]
	}
	return body[i : i+j]
}

// After a CA rotation the successor lives under another issuer; the
// "Renewed by" link must point there, even when the old issuer has a
// certificate with the same serial.
func TestUIRenewedByAcrossIssuers(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		e := newUIOn(t, s, nil)
		inventorytest.Issuer(t, s, "ca2")
		old := e.certs[0]
		serial := inventorytest.RandomSerial(t)
		// A decoy with the successor's serial under the old issuer.
		inventorytest.Issue(t, s, inventory.Certificate{IssuerID: "ca", Serial: serial, CommonName: "decoy.test", SANs: []string{"dns:decoy.test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)})
		inventorytest.Issue(t, s, inventory.Certificate{IssuerID: "ca2", Serial: serial, CommonName: old.CommonName, SANs: old.SANs,
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(30 * 24 * time.Hour), Predecessor: old.Serial, PredecessorIssuerID: "ca"})
		op, _ := e.client(t, "ada", "correct horse battery")
		code, body, _ := get(t, op, e.srv.URL+"/ui/certificates/ca/"+old.Serial)
		want := `href="/ui/certificates/ca2/` + inventory.FormatSerial(serial) + `"`
		if code != 200 || !strings.Contains(body, want) || strings.Contains(body, `class="renewed-by" href="/ui/certificates/ca/`+inventory.FormatSerial(serial)) {
			t.Fatalf("certificate page = %d; want the Renewed by link %s:\n%s", code, want, rowOf(body, "Renewal chain"))
		}
		if code, _, _ := get(t, op, e.srv.URL+"/ui/certificates/ca2/"+serial); code != 200 {
			t.Errorf("successor link target = %d, want 200", code)
		}
	})
}

// The certificate page decodes the extensions, and the PEM download is
// the leaf plus its issuing CA (not the root).
func TestUICertificateFieldsAndPEMChain(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		e := newUIOn(t, s, nil)
		subDER := putSubCA(t, s, "sub", "ca", "", "active")
		c := inventory.Certificate{IssuerID: "sub", Serial: inventorytest.RandomSerial(t), CommonName: "full.test", SANs: []string{"dns:full.test"},
			NotBefore: time.Now().Add(-time.Hour).Truncate(time.Second), NotAfter: time.Now().Add(24 * time.Hour).Truncate(time.Second)}
		if err := s.ReserveCertificate(ctx, &c); err != nil {
			t.Fatal(err)
		}
		sn, _ := new(big.Int).SetString(c.Serial, 16)
		key, _ := rsaKey(t)
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: c.CommonName}, DNSNames: []string{"full.test"},
			NotBefore: c.NotBefore, NotAfter: c.NotAfter, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			SubjectKeyId: []byte{0xaa, 0xbb}, AuthorityKeyId: []byte{0xcc, 0xdd},
			CRLDistributionPoints: []string{"http://pki.test/crl/sub.crl"}, OCSPServer: []string{"http://pki.test/ocsp"},
			IssuingCertificateURL: []string{"http://pki.test/ca/sub.crt"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: pkix.Name{CommonName: "Issuing sub"}}, key, caKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteCertificate(ctx, "sub", c.Serial, der, "", inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		vic, _ := e.client(t, "vic", "correct horse battery")
		page := e.srv.URL + "/ui/certificates/sub/" + c.Serial
		code, body, _ := get(t, vic, page)
		if code != 200 {
			t.Fatalf("certificate page = %d", code)
		}
		for id, want := range map[string]string{
			"cert-ku": "digitalSignature keyEncipherment", "cert-eku": "serverAuth", "cert-bc": "not a CA",
			"cert-ski": "aa:bb", "cert-aki": "cc:dd", "cert-crldp": "http://pki.test/crl/sub.crl", "cert-ocsp": "http://pki.test/ocsp",
			"cert-caissuers": "http://pki.test/ca/sub.crt", "cert-sigalg": "ECDSA-SHA256", "cert-pubkey": "RSA 2048 bits",
		} {
			if !strings.Contains(rowOf(strings.ReplaceAll(body, "</dd>", "</tr>"), `id="`+id+`"`), want) {
				t.Errorf("field %s lacks %q", id, want)
			}
		}
		res, err := vic.Get(page + ".pem")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.Header.Get("Content-Type") != "application/pem-certificate-chain" {
			t.Errorf("PEM Content-Type %q", res.Header.Get("Content-Type"))
		}
		var got [][]byte
		for rest := raw; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				t.Errorf("PEM block does not parse: %v", err)
			}
			got = append(got, b.Bytes)
		}
		if len(got) != 2 || string(got[0]) != string(der) || string(got[1]) != string(subDER) {
			t.Errorf("PEM chain has %d certificates, want leaf then issuing CA", len(got))
		}
	})
}

// The keys page shows when each key was created and first used.
func TestUIKeysFirstUsed(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		first := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
		k := inventory.Key{ID: "k1", Class: "issuing", Backend: "softkms", Algorithm: "EC-P256", Created: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}
		if err := s.PutKey(ctx, &k, inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetKeyUsage(ctx, "k1", 3, &first, &first); err != nil {
			t.Fatal(err)
		}
		e := newUIOn(t, s, func(w *web.Server) { w.WithKeyReporter(storeKeys{s}) })
		vic, _ := e.client(t, "vic", "correct horse battery")
		code, body, _ := get(t, vic, e.srv.URL+"/ui/keys")
		row := rowOf(body, `id="key-k1"`)
		if code != 200 || !strings.Contains(body, ">First used</th>") || !strings.Contains(body, ">Created</th>") ||
			!strings.Contains(row, "<td>2026-01-02</td>") || !strings.Contains(row, "<td>2026-02-03</td>") {
			t.Errorf("keys page = %d, row:\n%s", code, row)
		}
	})
}

// Environment is a filter field of the certificates table; sorting keeps
// it.
func TestUICertificatesEnvironmentFilter(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		e := newUIOn(t, s, nil)
		if _, _, err := s.ChangeLabels(context.Background(), "ca", e.certs[0].Serial, inventory.LabelChange{Environment: ptr("prod")}, inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		vic, _ := e.client(t, "vic", "correct horse battery")
		code, body, _ := get(t, vic, e.srv.URL+"/ui/certificates?environment=prod")
		if code != 200 || !strings.Contains(body, `name="environment" id="environment" value="prod"`) ||
			!strings.Contains(body, "alpha.test") || strings.Contains(body, "beta.test") || !strings.Contains(body, "environment=prod&amp;order=asc&amp;sort=cn") {
			t.Errorf("environment filter = %d:\n%s", code, body)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// storeKeys reports the key inventory straight from the store.
type storeKeys struct{ s *inventory.Store }

func (k storeKeys) Keys(ctx context.Context) ([]inventory.Key, error) { return k.s.Keys(ctx) }

func (k storeKeys) Compliance(context.Context, inventory.Event) (*ca.Report, error) {
	return &ca.Report{}, nil
}

func rsaKey(t *testing.T) (*rsa.PublicKey, error) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey, nil
}

// The dashboard's CA health shows rotation due dates from the key
// records and flags stale CRLs and OCSP responses per issuer.
func TestUIDashboardCAHealth(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		e := newUIOn(t, s, nil)
		putSubCA(t, s, "sub", "ca", "", "active")
		now := time.Now().UTC().Truncate(time.Second)
		due := time.Date(2027, 3, 4, 0, 0, 0, 0, time.UTC)
		if err := s.PutKey(ctx, &inventory.Key{ID: "sub-key", Class: "issuing", Backend: "softkms", Algorithm: "EC-P256", IssuerID: "sub",
			RotationDue: &due}, inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []inventory.CRL{
			{IssuerID: "ca", Number: 1, ThisUpdate: now.Add(-48 * time.Hour), NextUpdate: now.Add(-time.Hour), DER: []byte{1}},
			{IssuerID: "sub", Number: 1, ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(23 * time.Hour), DER: []byte{2}},
		} {
			if _, err := s.PutCRL(ctx, &c); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range e.certs {
			r := inventory.OCSPResponse{IssuerID: "ca", Serial: c.Serial, Status: "good", ThisUpdate: now.Add(-time.Duration(3+i) * time.Hour),
				NextUpdate: now.Add(time.Duration(i-1) * time.Hour), DER: []byte{3}}
			if err := s.PutOCSPResponse(ctx, &r); err != nil {
				t.Fatal(err)
			}
		}
		op, _ := e.client(t, "ada", "correct horse battery")
		code, body, _ := get(t, op, e.srv.URL+"/ui/")
		if code != 200 {
			t.Fatalf("dashboard = %d", code)
		}
		ca, sub := rowOf(body, `id="health-ca"`), rowOf(body, `id="health-sub"`)
		for _, want := range []string{"CRL stale", now.Add(-time.Hour).Format("2006-01-02 15:04"), "OCSP stale", "2 responses, oldest 4 h old"} {
			if !strings.Contains(ca, want) {
				t.Errorf("ca health lacks %q:\n%s", want, ca)
			}
		}
		for _, want := range []string{"CRL fresh", now.Add(23 * time.Hour).Format("2006-01-02 15:04"), "OCSP none", "2027-03-04"} {
			if !strings.Contains(sub, want) {
				t.Errorf("sub health lacks %q:\n%s", want, sub)
			}
		}
	})
}

// (429, Retry-After), audited; the count lives in the database.
