package inventory_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// issueSigned reserves and completes a certificate for cn whose DER
// carries key's public key, signed by signer with alg.
func issueSigned(t *testing.T, s *inventory.Store, cn string, notAfter time.Time, keyType string, key crypto.Signer,
	signer crypto.Signer, alg x509.SignatureAlgorithm) *inventory.Certificate {
	t.Helper()
	ctx := context.Background()
	c := inventory.Certificate{IssuerID: "ca", Serial: inventorytest.RandomSerial(t), CommonName: cn, Subject: "CN=" + cn,
		SANs: []string{"dns:" + cn, "dns:alt-" + cn}, NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter,
		KeyType: keyType, Profile: "server", Protocol: "acme"}
	if err := s.ReserveCertificate(ctx, &c); err != nil {
		t.Fatal(err)
	}
	serial, _ := new(big.Int).SetString(c.Serial, 16)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, SignatureAlgorithm: alg}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: pkix.Name{CommonName: "signer"}},
		key.Public(), signer)
	if err != nil {
		t.Fatalf("CreateCertificate(%s, %v) = %v", cn, alg, err)
	}
	if err := s.CompleteCertificate(ctx, "ca", c.Serial, der, "", inventory.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Certificate(ctx, "ca", c.Serial)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func cns(certs []inventory.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = c.CommonName
	}
	slices.Sort(out)
	return out
}

// searchAll returns the sorted common names of every match of f.
func searchAll(t *testing.T, s *inventory.Store, f inventory.SearchFilter) []string {
	t.Helper()
	f.Limit = 1000
	page, err := s.Search(context.Background(), f)
	if err != nil {
		t.Fatalf("Search(%+v) = %v", f, err)
	}
	return cns(page.Certificates)
}

// Free text goes through the trigram index (SQLite FTS5, PostgreSQL
// pg_trgm) yet matches exactly what the plain LIKE scan of
// FindCertificates matches: substrings of CN, subject and SANs in any
// case, serials and fingerprints with or without colons. The index
// follows inserts, completion (fingerprint), label changes and
// revocation.
func TestSearchFreeText(t *testing.T) {
	t.Parallel()
	ec := ecKey(t)
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			inventorytest.Issuer(t, s, "ca")
			exp := time.Now().Add(30 * 24 * time.Hour)
			web := issueSigned(t, s, "Web-Front.Example.test", exp, "EC-P256", ec, ec, x509.ECDSAWithSHA256)
			api := issueSigned(t, s, "api.example.test", exp, "EC-P256", ec, ec, x509.ECDSAWithSHA256)
			issueSigned(t, s, "mail.other.test", exp, "EC-P256", ec, ec, x509.ECDSAWithSHA256)
			colons := func(h string) string {
				var b strings.Builder
				for i := 0; i < len(h); i += 2 {
					if i > 0 {
						b.WriteByte(':')
					}
					b.WriteString(strings.ToUpper(h[i:min(i+2, len(h))]))
				}
				return b.String()
			}
			for _, tc := range []struct {
				q    string
				want []string
			}{
				{"front.exa", []string{"Web-Front.Example.test"}},
				{"WEB-FRONT", []string{"Web-Front.Example.test"}},
				{"alt-api", []string{"api.example.test"}}, // a SAN only
				{"example.test", []string{"Web-Front.Example.test", "api.example.test"}},
				{"cn=mail", []string{"mail.other.test"}}, // the subject
				{".test", []string{"Web-Front.Example.test", "api.example.test", "mail.other.test"}},
				{"te", []string{"Web-Front.Example.test", "api.example.test", "mail.other.test"}}, // short: scan
				{"nothing-like-it", []string{}},
				{"web-front.example.test", []string{"Web-Front.Example.test"}},    // longer than the indexed part
				{"web-front.example.tesT-NOT", []string{}},                        // its start matches, the rest not
				{"cn=web-front.example.test", []string{"Web-Front.Example.test"}}, // spans no field boundary
				{`50%_"x`, []string{}},
				{web.Serial, []string{"Web-Front.Example.test"}},
				{strings.ToUpper(web.Serial[:10]), []string{"Web-Front.Example.test"}},
				{colons(api.Serial[:12]), []string{"api.example.test"}},
				{"0x" + api.Serial, []string{"api.example.test"}},
				{api.Serial[5:15], []string{"api.example.test"}}, // inner substring, as before
				{colons(web.FingerprintSHA256), []string{"Web-Front.Example.test"}},
				{web.FingerprintSHA256[:16], []string{"Web-Front.Example.test"}},
			} {
				got := searchAll(t, s, inventory.SearchFilter{CertFilter: inventory.CertFilter{Text: tc.q}})
				if !slices.Equal(got, tc.want) {
					t.Errorf("Search(q=%q) = %q, want %q", tc.q, got, tc.want)
				}
				// The indexed path and the LIKE scan agree.
				scan, err := s.FindCertificates(ctx, inventory.CertFilter{Text: tc.q, Limit: 1000})
				if err != nil || !slices.Equal(cns(scan), got) {
					t.Errorf("FindCertificates(q=%q) = %q, %v; Search gave %q", tc.q, cns(scan), err, got)
				}
				if n, err := s.CountSearch(ctx, inventory.SearchFilter{CertFilter: inventory.CertFilter{Text: tc.q}}); err != nil || n != len(tc.want) {
					t.Errorf("CountSearch(q=%q) = %d, %v; want %d", tc.q, n, err, len(tc.want))
				}
			}

			// Paged, a broad needle takes the page-order probe.
			for _, tc := range []struct {
				f    inventory.SearchFilter
				want []string
			}{
				{inventory.SearchFilter{CertFilter: inventory.CertFilter{Text: ".test", Limit: 1}},
					[]string{"mail.other.test", "api.example.test", "Web-Front.Example.test"}},
				{inventory.SearchFilter{Sort: inventory.SortCN, CertFilter: inventory.CertFilter{Text: "example", Limit: 1}},
					[]string{"Web-Front.Example.test", "api.example.test"}},
				{inventory.SearchFilter{Sort: inventory.SortCN, Order: inventory.OrderDesc, CertFilter: inventory.CertFilter{Text: "test", Limit: 2}},
					[]string{"mail.other.test", "api.example.test", "Web-Front.Example.test"}},
			} {
				if got := searchNames(t, s, tc.f); !slices.Equal(got, tc.want) {
					t.Errorf("Search(%+v) pages = %q, want %q", tc.f, got, tc.want)
				}
			}

			// Insert: found at once. Reserved only: no fingerprint yet,
			// searchable by name; completion adds the fingerprint.
			late := inventory.Certificate{IssuerID: "ca", Serial: inventorytest.RandomSerial(t), CommonName: "late.example.test",
				Subject: "CN=late.example.test", NotBefore: time.Now(), NotAfter: exp, KeyType: "EC-P256"}
			if err := s.ReserveCertificate(ctx, &late); err != nil {
				t.Fatal(err)
			}
			if got := searchAll(t, s, inventory.SearchFilter{CertFilter: inventory.CertFilter{Text: "LATE.exam"}}); !slices.Equal(got, []string{"late.example.test"}) {
				t.Errorf("after reserve: Search = %q", got)
			}
			der := inventorytest.DER(t, &late, nil)
			if err := s.CompleteCertificate(ctx, "ca", late.Serial, der, "", inventory.Event{Actor: "test"}); err != nil {
				t.Fatal(err)
			}
			done, err := s.Certificate(ctx, "ca", late.Serial)
			if err != nil {
				t.Fatal(err)
			}
			if got := searchAll(t, s, inventory.SearchFilter{CertFilter: inventory.CertFilter{Text: done.FingerprintSHA256[20:40]}}); !slices.Equal(got, []string{"late.example.test"}) {
				t.Errorf("after complete: Search(fingerprint) = %q", got)
			}
			// Labels are not free text; setting them leaves the index alone.
			if err := s.SetLabels(ctx, "ca", api.Serial, inventory.Labels{Owner: "zed-owner", Tags: []string{"frontline"}},
				inventory.Event{Actor: "test"}); err != nil {
				t.Fatal(err)
			}
			if got := searchAll(t, s, inventory.SearchFilter{CertFilter: inventory.CertFilter{Text: "zed-owner"}}); len(got) != 0 {
				t.Errorf("Search(owner text) = %q, want nothing (labels are not free text)", got)
			}
			if got := searchAll(t, s, inventory.SearchFilter{CertFilter: inventory.CertFilter{Text: "api.exa"}}); !slices.Equal(got, []string{"api.example.test"}) {
				t.Errorf("after labels: Search = %q", got)
			}
			// Revocation: still found, and by state.
			if _, err := s.RevokeCertificate(ctx, "ca", api.Serial, "keyCompromise", time.Now(), inventory.Event{Actor: "test"}); err != nil {
				t.Fatal(err)
			}
			f := inventory.SearchFilter{CertFilter: inventory.CertFilter{Text: colons(api.Serial), States: []inventory.State{inventory.StateRevoked}}}
			if got := searchAll(t, s, f); !slices.Equal(got, []string{"api.example.test"}) {
				t.Errorf("after revoke: Search(serial, revoked) = %q", got)
			}
		})
	}
}

// The weak filter reads the weak column computed at write time: RSA
// under 2048 bits and SHA-1 signatures always, and "expired but still
// deployed" once a sighting after not_after is recorded. SeenSince and
// NotSeenSince read last_seen, the latest sighting of any installation.
func TestSearchWeakAndSeen(t *testing.T) {
	t.Parallel()
	rsa1024, rsa2048, p256 := rsaKey(t, 1024), rsaKey(t, 2048), ecKey(t)
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			inventorytest.Issuer(t, s, "ca")
			now := time.Now().UTC()
			day := 24 * time.Hour
			later := now.Add(90 * day)
			issueSigned(t, s, "rsa1024.test", later, "RSA-1024", rsa1024, p256, x509.ECDSAWithSHA256)
			issueSigned(t, s, "sha1.test", later, "RSA-2048", rsa2048, rsa2048, x509.SHA1WithRSA)
			issueSigned(t, s, "p256.test", later, "EC-P256", p256, p256, x509.ECDSAWithSHA256)
			issueSigned(t, s, "rsa2048.test", later, "RSA-2048", rsa2048, rsa2048, x509.SHA256WithRSA)
			deployed := issueSigned(t, s, "deployed.test", now.Add(-2*day), "EC-P256", p256, p256, x509.ECDSAWithSHA256)
			retired := issueSigned(t, s, "retired.test", now.Add(-2*day), "EC-P256", p256, p256, x509.ECDSAWithSHA256)
			live := issueSigned(t, s, "live.test", later, "EC-P256", p256, p256, x509.ECDSAWithSHA256)
			sight := func(c *inventory.Certificate, loc string, at time.Time) {
				t.Helper()
				if _, err := s.RecordSighting(ctx, inventory.Sighting{DER: c.DER, Kind: inventory.KindTLS, Location: loc, At: at}); err != nil {
					t.Fatalf("RecordSighting = %v", err)
				}
			}
			sight(retired, "127.0.0.1:1", now.Add(-3*day)) // last seen before it expired
			sight(live, "127.0.0.1:2", now.Add(-20*day))
			weak := []string{"rsa1024.test", "sha1.test"}
			if got := searchAll(t, s, inventory.SearchFilter{Weak: true}); !slices.Equal(got, weak) {
				t.Errorf("Weak = %q, want %q", got, weak)
			}
			sight(deployed, "127.0.0.1:3", now.Add(-time.Hour)) // served after expiry
			weak = []string{"deployed.test", "rsa1024.test", "sha1.test"}
			if got := searchAll(t, s, inventory.SearchFilter{Weak: true}); !slices.Equal(got, weak) {
				t.Errorf("Weak after sighting = %q, want %q", got, weak)
			}
			// Seen at a Now before it expired, it was not yet weak.
			past := inventory.SearchFilter{Weak: true, CertFilter: inventory.CertFilter{Now: now.Add(-3 * day)}}
			if got := searchAll(t, s, past); !slices.Equal(got, []string{"rsa1024.test", "sha1.test"}) {
				t.Errorf("Weak at an earlier Now = %q", got)
			}
			if n, err := s.CountSearch(ctx, inventory.SearchFilter{Weak: true}); err != nil || n != 3 {
				t.Errorf("CountSearch(weak) = %d, %v; want 3", n, err)
			}

			// last_seen is the max over installations, and follows updates
			// in both directions.
			sight(live, "127.0.0.1:4", now.Add(-5*day))
			for _, tc := range []struct {
				name string
				f    inventory.SearchFilter
				want []string
			}{
				{"seen 1d", inventory.SearchFilter{SeenSince: now.Add(-day)}, []string{"deployed.test"}},
				{"seen 4d", inventory.SearchFilter{SeenSince: now.Add(-4 * day)}, []string{"deployed.test", "retired.test"}},
				{"seen 10d", inventory.SearchFilter{SeenSince: now.Add(-10 * day)}, []string{"deployed.test", "live.test", "retired.test"}},
				{"seen 30d", inventory.SearchFilter{SeenSince: now.Add(-30 * day)}, []string{"deployed.test", "live.test", "retired.test"}},
				{"not seen 4d", inventory.SearchFilter{NotSeenSince: now.Add(-4 * day)},
					[]string{"live.test", "p256.test", "rsa1024.test", "rsa2048.test", "sha1.test"}},
			} {
				if got := searchAll(t, s, tc.f); !slices.Equal(got, tc.want) {
					t.Errorf("%s: Search = %q, want %q", tc.name, got, tc.want)
				}
			}
			sight(live, "127.0.0.1:4", now.Add(-25*day)) // a re-import with an older time lowers it
			if got := searchAll(t, s, inventory.SearchFilter{SeenSince: now.Add(-10 * day)}); !slices.Equal(got, []string{"deployed.test", "retired.test"}) {
				t.Errorf("after older sighting: Search(seen 10d) = %q", got)
			}
			if _, err := s.RawDB().ExecContext(ctx, s.RawDB().Rebind(`DELETE FROM installations WHERE fingerprint_sha256 = ?`),
				deployed.FingerprintSHA256); err != nil {
				t.Fatal(err)
			}
			if got := searchAll(t, s, inventory.SearchFilter{Weak: true}); !slices.Equal(got, []string{"rsa1024.test", "sha1.test"}) {
				t.Errorf("after the installation is gone: Weak = %q", got)
			}
		})
	}
}

// Migration 0008 indexes and flags rows written by an older MICA: a
// database at version 7 with certificates and sightings, once opened,
// finds them by free text, weak and seen-since.
func TestSearchMigrationBackfills(t *testing.T) {
	t.Parallel()
	dsns := map[string]func(testing.TB) string{"sqlite": inventorytest.SQLiteDSN, "postgres": inventorytest.PostgresDSN}
	for name, mk := range dsns {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dsn := mk(t)
			db, err := inventory.OpenAtVersion(ctx, dsn, 7)
			if err != nil {
				t.Fatalf("OpenAtVersion(7) = %v", err)
			}
			now := time.Now().UTC()
			ts := func(d time.Duration) any {
				at := now.Add(d).Truncate(time.Microsecond)
				if name == "sqlite" {
					return at.Format("2006-01-02T15:04:05.000000Z")
				}
				return at
			}
			day := 24 * time.Hour
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.ExecContext(ctx, db.Rebind(q), args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			exec(`INSERT INTO issuers (id, not_before, not_after, status, der, created_at) VALUES ('ca', ?, ?, 'active', ?, ?)`,
				ts(-day), ts(365*day), []byte{0x30}, ts(0))
			for _, r := range []struct {
				cn, serial, keyType, sigAlg string
				bits                        int
				notAfter                    time.Duration
			}{
				{"old-weak.example.test", "a1b2c3d4", "RSA-1024", "SHA256-RSA", 1024, 90 * day},
				{"old-sha1.example.test", "b1b2c3d4", "RSA-2048", "SHA1-RSA", 2048, 90 * day},
				{"old-good.example.test", "c1b2c3d4", "EC-P256", "ECDSA-SHA256", 256, 90 * day},
				{"old-served.example.test", "d1b2c3d4", "EC-P256", "ECDSA-SHA256", 256, -5 * day},
			} {
				exec(`INSERT INTO certificates (issuer_id, serial, subject, common_name, not_before, not_after, key_type, state,
					fingerprint_sha256, search_text, der, created_at, updated_at, key_bits, sig_alg)
					VALUES ('ca', ?, ?, ?, ?, ?, ?, 'issued', ?, ?, ?, ?, ?, ?, ?)`,
					r.serial, "CN="+r.cn, r.cn, ts(-100*day), ts(r.notAfter), r.keyType, strings.Repeat(r.serial, 8),
					r.cn+"\ncn="+r.cn, []byte{0x30}, ts(-100*day), ts(-100*day), r.bits, r.sigAlg)
			}
			fp := strings.Repeat("d1b2c3d4", 8)
			exec(`INSERT INTO discovered_certificates (fingerprint_sha256, not_before, not_after, der, first_seen, last_seen)
				VALUES (?, ?, ?, ?, ?, ?)`, fp, ts(-100*day), ts(-5*day), []byte{0x30}, ts(-2*day), ts(-day))
			exec(`INSERT INTO installations (fingerprint_sha256, kind, location, first_seen, last_seen) VALUES (?, 'tls', 'h:443', ?, ?)`,
				fp, ts(-2*day), ts(-day))
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			s, err := inventory.Open(ctx, dsn)
			if err != nil {
				t.Fatalf("Open (migrate 7 → latest) = %v", err)
			}
			defer s.Close()
			if v, err := s.SchemaVersion(ctx); err != nil || v < 8 {
				t.Fatalf("SchemaVersion = %d, %v; want ≥ 8", v, err)
			}
			for _, tc := range []struct {
				name string
				f    inventory.SearchFilter
				want []string
			}{
				{"text", inventory.SearchFilter{CertFilter: inventory.CertFilter{Text: "SERVED.example"}},
					[]string{"old-served.example.test"}},
				{"text all", inventory.SearchFilter{CertFilter: inventory.CertFilter{Text: "example.test"}},
					[]string{"old-good.example.test", "old-served.example.test", "old-sha1.example.test", "old-weak.example.test"}},
				{"serial", inventory.SearchFilter{CertFilter: inventory.CertFilter{Text: "B1:B2:C3"}}, []string{"old-sha1.example.test"}},
				{"weak", inventory.SearchFilter{Weak: true},
					[]string{"old-served.example.test", "old-sha1.example.test", "old-weak.example.test"}},
				{"seen 2d", inventory.SearchFilter{SeenSince: now.Add(-2 * day)}, []string{"old-served.example.test"}},
				{"not seen 2d", inventory.SearchFilter{NotSeenSince: now.Add(-2 * day)},
					[]string{"old-good.example.test", "old-sha1.example.test", "old-weak.example.test"}},
			} {
				if got := searchAll(t, s, tc.f); !slices.Equal(got, tc.want) {
					t.Errorf("%s: Search = %q, want %q", tc.name, got, tc.want)
				}
			}
		})
	}
}
