package inventory_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// searchNames runs f and returns the common names of every page, in order,
// following cursors, so paging is tested together with filtering.
func searchNames(t *testing.T, s *inventory.Store, f inventory.SearchFilter) []string {
	t.Helper()
	var names []string
	for range 100 {
		page, err := s.Search(context.Background(), f)
		if err != nil {
			t.Fatalf("Search(%+v) = %v", f, err)
		}
		for _, c := range page.Certificates {
			names = append(names, c.CommonName)
		}
		if page.Next == "" {
			return names
		}
		f.Cursor = page.Next
	}
	t.Fatal("Search never ended")
	return nil
}

func issueNamed(t *testing.T, s *inventory.Store, cn string, notAfter time.Time, key *rsa.PrivateKey) *inventory.Certificate {
	t.Helper()
	c := inventory.Certificate{IssuerID: "ca", Serial: inventorytest.RandomSerial(t), CommonName: cn, Subject: "CN=" + cn,
		SANs: []string{"dns:" + cn}, NotBefore: notAfter.Add(-30 * 24 * time.Hour), NotAfter: notAfter,
		KeyType: "EC-P256", Profile: "server", Protocol: "acme"}
	if key != nil {
		c.KeyType = "RSA-1024"
		ctx := context.Background()
		if err := s.ReserveCertificate(ctx, &c); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteCertificate(ctx, "ca", c.Serial, inventorytest.DER(t, &c, key), "", inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Certificate(ctx, "ca", c.Serial)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	return inventorytest.Issue(t, s, c)
}

func TestSearchLifecycleFilters(t *testing.T) {
	t.Parallel()
	weakKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			inventorytest.Issuer(t, s, "ca")
			now := time.Now()
			web := issueNamed(t, s, "web.test", now.Add(60*24*time.Hour), nil)
			soon := issueNamed(t, s, "soon.test", now.Add(5*24*time.Hour), nil)
			weak := issueNamed(t, s, "weak.test", now.Add(200*24*time.Hour), weakKey)
			gone := issueNamed(t, s, "gone.test", now.Add(-time.Hour), nil)
			issueNamed(t, s, "quiet.test", now.Add(100*24*time.Hour), nil)

			if err := s.SetLabels(ctx, "ca", web.Serial, inventory.Labels{Owner: "alice", Team: "web", Environment: "prod",
				Tags: []string{"PCI", "edge", "pci"}}, inventory.Event{Actor: "alice"}); err != nil {
				t.Fatalf("SetLabels = %v", err)
			}
			if err := s.SetLabels(ctx, "ca", web.Serial, inventory.Labels{Tags: []string{"bad tag"}}, inventory.Event{}); !errors.Is(err, inventory.ErrInvalid) {
				t.Errorf("SetLabels(bad tag) = %v, want ErrInvalid", err)
			}
			// gone.test is still served after it expired; web.test was seen
			// last week only.
			if _, err := s.RecordSighting(ctx, inventory.Sighting{DER: gone.DER, Kind: inventory.KindTLS, Location: "127.0.0.1:443"}); err != nil {
				t.Fatalf("RecordSighting = %v", err)
			}
			if _, err := s.RecordSighting(ctx, inventory.Sighting{DER: web.DER, Kind: inventory.KindFile, Location: "h1:/etc/web.pem",
				At: now.Add(-7 * 24 * time.Hour)}); err != nil {
				t.Fatalf("RecordSighting = %v", err)
			}
			day := 24 * time.Hour
			for _, tc := range []struct {
				name string
				f    inventory.SearchFilter
				want []string
			}{
				{"all", inventory.SearchFilter{}, []string{"quiet.test", "gone.test", "weak.test", "soon.test", "web.test"}},
				{"owner", inventory.SearchFilter{Owner: "alice"}, []string{"web.test"}},
				{"team+env", inventory.SearchFilter{Team: "web", Environment: "prod"}, []string{"web.test"}},
				{"tag", inventory.SearchFilter{Tag: "pci"}, []string{"web.test"}},
				{"tag none", inventory.SearchFilter{Tag: "nope"}, nil},
				{"key family", inventory.SearchFilter{KeyType: "RSA-"}, []string{"weak.test"}},
				{"key exact", inventory.SearchFilter{KeyType: "EC-P256", CertFilter: inventory.CertFilter{Text: "w"}}, []string{"web.test"}},
				{"expiring 7d", inventory.SearchFilter{ExpiringWithin: 7 * day}, []string{"soon.test"}},
				{"expiring 90d", inventory.SearchFilter{ExpiringWithin: 90 * day}, []string{"soon.test", "web.test"}},
				{"weak", inventory.SearchFilter{Weak: true}, []string{"gone.test", "weak.test"}},
				{"seen since 1d", inventory.SearchFilter{SeenSince: now.Add(-day)}, []string{"gone.test"}},
				{"seen since 30d", inventory.SearchFilter{SeenSince: now.Add(-30 * day)}, []string{"gone.test", "web.test"}},
				{"not seen since 1d", inventory.SearchFilter{NotSeenSince: now.Add(-day)},
					[]string{"quiet.test", "weak.test", "soon.test", "web.test"}},
				{"expired state", inventory.SearchFilter{CertFilter: inventory.CertFilter{States: []inventory.State{inventory.StateExpired}}}, []string{"gone.test"}},
				{"expiry sort paged", inventory.SearchFilter{Sort: inventory.SortExpiry, CertFilter: inventory.CertFilter{Limit: 2}},
					[]string{"gone.test", "soon.test", "web.test", "quiet.test", "weak.test"}},
				{"newest paged", inventory.SearchFilter{CertFilter: inventory.CertFilter{Limit: 1, Protocol: "acme"}},
					[]string{"quiet.test", "gone.test", "weak.test", "soon.test", "web.test"}},
			} {
				got := searchNames(t, s, tc.f)
				if !slices.Equal(got, tc.want) {
					t.Errorf("%s: Search = %q, want %q", tc.name, got, tc.want)
				}
				n, err := s.CountSearch(ctx, tc.f)
				if err != nil || n != len(tc.want) {
					t.Errorf("%s: CountSearch = %d, %v; want %d", tc.name, n, err, len(tc.want))
				}
			}
			page, err := s.Search(ctx, inventory.SearchFilter{Owner: "alice"})
			if err != nil || len(page.Certificates) != 1 {
				t.Fatalf("Search(owner) = %v, %v", page, err)
			}
			l := page.Certificates[0].Labels
			if l == nil || !slices.Equal(l.Tags, []string{"edge", "pci"}) || l.KeyBits != 256 || l.SigAlg == "" {
				t.Errorf("Labels = %+v, want tags [edge pci], 256 bits, a signature algorithm", l)
			}
			d, err := s.CertificateDetail(ctx, "ca", weak.Serial)
			if err != nil || d.Labels.KeyBits != 1024 {
				t.Errorf("CertificateDetail(weak) = %+v, %v; want 1024 bits", d, err)
			}
			_ = soon
			for _, bad := range []inventory.SearchFilter{{Sort: "name"}, {Cursor: "!!"}, {Cursor: "eA", Sort: inventory.SortExpiry}} {
				if _, err := s.Search(ctx, bad); !errors.Is(err, inventory.ErrInvalid) {
					t.Errorf("Search(%+v) = %v, want ErrInvalid", bad, err)
				}
			}
		})
	}
}

func selfSigned(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSightingsMatchOrExternal(t *testing.T) {
	t.Parallel()
	ext := selfSigned(t, "outside.test")
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			inventorytest.Issuer(t, s, "ca")
			ours := issueNamed(t, s, "ours.test", time.Now().Add(24*time.Hour), nil)
			d, err := s.RecordSighting(ctx, inventory.Sighting{DER: ours.DER, Kind: inventory.KindTLS, Location: "127.0.0.1:8443"})
			if err != nil || d.External || d.CertID != ours.ID {
				t.Fatalf("RecordSighting(ours) = %+v, %v; want matched to %d", d, err, ours.ID)
			}
			for range 2 { // the second sighting refreshes, not duplicates
				d, err = s.RecordSighting(ctx, inventory.Sighting{DER: ext, Kind: inventory.KindFile, Location: "h:/etc/x.pem"})
				if err != nil || !d.External || d.KeyType != "RSA-2048" {
					t.Fatalf("RecordSighting(external) = %+v, %v; want external RSA-2048", d, err)
				}
			}
			if _, err := s.RecordSighting(ctx, inventory.Sighting{DER: []byte("junk"), Kind: inventory.KindFile, Location: "x"}); !errors.Is(err, inventory.ErrInvalid) {
				t.Errorf("RecordSighting(junk) = %v, want ErrInvalid", err)
			}
			all, err := s.FindDiscovered(ctx, inventory.DiscoveredFilter{})
			if err != nil || len(all) != 2 {
				t.Fatalf("FindDiscovered = %d, %v; want 2", len(all), err)
			}
			exts, err := s.FindDiscovered(ctx, inventory.DiscoveredFilter{External: true, Text: "OUTSIDE"})
			if err != nil || len(exts) != 1 || exts[0].CommonName != "outside.test" {
				t.Fatalf("FindDiscovered(external) = %+v, %v", exts, err)
			}
			inst, err := s.Installations(ctx, exts[0].FingerprintSHA256)
			if err != nil || len(inst) != 1 || inst[0].Location != "h:/etc/x.pem" {
				t.Fatalf("Installations = %+v, %v; want one at h:/etc/x.pem", inst, err)
			}
		})
	}
}

func TestAPITokensAndJobs(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			tok, rec, err := s.CreateAPIToken(ctx, inventory.RoleViewer, "ci", inventory.Event{Actor: "admin"})
			if err != nil {
				t.Fatalf("CreateAPIToken = %v", err)
			}
			got, err := s.AuthenticateAPIToken(ctx, tok)
			if err != nil || got.ID != rec.ID || got.Role != inventory.RoleViewer {
				t.Fatalf("AuthenticateAPIToken = %+v, %v", got, err)
			}
			for _, bad := range []string{"", tok + "x", tok[:len(tok)-1] + "A", "mica_" + rec.ID + "_" + "short"} {
				if bad == tok {
					continue
				}
				if _, err := s.AuthenticateAPIToken(ctx, bad); !errors.Is(err, inventory.ErrNotFound) {
					t.Errorf("AuthenticateAPIToken(%q) = %v, want ErrNotFound", bad, err)
				}
			}
			if _, _, err := s.CreateAPIToken(ctx, "root", "", inventory.Event{}); !errors.Is(err, inventory.ErrInvalid) {
				t.Errorf("CreateAPIToken(root) = %v, want ErrInvalid", err)
			}

			j, err := s.CreateDiscoveryJob(ctx, "scan", map[string]any{"targets": []string{"127.0.0.1"}}, inventory.Event{Actor: "op"})
			if err != nil || j.State != inventory.JobQueued {
				t.Fatalf("CreateDiscoveryJob = %+v, %v", j, err)
			}
			c1, err := s.ClaimDiscoveryJob(ctx, "replica-1")
			if err != nil || c1 == nil || c1.ID != j.ID {
				t.Fatalf("ClaimDiscoveryJob = %+v, %v", c1, err)
			}
			if c2, err := s.ClaimDiscoveryJob(ctx, "replica-2"); err != nil || c2 != nil {
				t.Fatalf("second ClaimDiscoveryJob = %+v, %v; want nothing", c2, err)
			}
			if err := s.FinishDiscoveryJob(ctx, j.ID, 3, []inventory.JobError{{Target: "127.0.0.1:1", Error: "refused"}}); err != nil {
				t.Fatal(err)
			}
			if err := s.FinishDiscoveryJob(ctx, j.ID, 3, nil); !errors.Is(err, inventory.ErrConflict) {
				t.Errorf("FinishDiscoveryJob twice = %v, want ErrConflict", err)
			}
			jobs, err := s.DiscoveryJobs(ctx, 0, 10)
			if err != nil || len(jobs) != 1 || jobs[0].Found != 3 || len(jobs[0].Errors) != 1 || jobs[0].FinishedAt == nil {
				t.Fatalf("DiscoveryJobs = %+v, %v", jobs, err)
			}
		})
	}
}
