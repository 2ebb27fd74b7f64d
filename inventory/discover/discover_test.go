package discover_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/discover"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func selfSigned(t *testing.T, cn string, key crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// tlsServer serves der/key on 127.0.0.1 and returns its port.
func tlsServer(t *testing.T, der []byte, key crypto.Signer) int {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// TestScanThreeOutcomes scans a server presenting a MICA-issued
// certificate, one presenting an external self-signed one and a closed
// port, through a stored job, and checks each outcome.
func TestScanThreeOutcomes(t *testing.T) {
	t.Parallel()
	s := inventorytest.SQLite(t)
	ctx := context.Background()
	inventorytest.Issuer(t, s, "ca")
	micaKey := newKey(t)
	c := inventory.Certificate{IssuerID: "ca", Serial: inventorytest.RandomSerial(t), CommonName: "localhost",
		SANs: []string{"dns:localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	if err := s.ReserveCertificate(ctx, &c); err != nil {
		t.Fatal(err)
	}
	micaDER := inventorytest.DER(t, &c, micaKey)
	if err := s.CompleteCertificate(ctx, "ca", c.Serial, micaDER, "", inventory.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	extKey := newKey(t)
	pMICA := tlsServer(t, micaDER, micaKey)
	pExt := tlsServer(t, selfSigned(t, "outside.test", extKey), extKey)
	pClosed := closedPort(t)

	r := &discover.Runner{Store: s, Allow: discover.LoopbackOnly(), Holder: "test", Timeout: 2 * time.Second}
	spec := inventory.JobSpec{Targets: []string{"127.0.0.1:" + strconv.Itoa(pMICA), "127.0.0.1:" + strconv.Itoa(pExt),
		"127.0.0.1:" + strconv.Itoa(pClosed), "10.0.0.1:443"}}
	if _, err := s.CreateDiscoveryJob(ctx, "scan", spec, inventory.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	job, err := s.ClaimDiscoveryJob(ctx, "test")
	if err != nil || job == nil {
		t.Fatalf("ClaimDiscoveryJob = %v, %v", job, err)
	}
	sink, err := r.Run(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if sink.Certificates != 2 || sink.External != 1 {
		t.Errorf("scan found %d certificates (%d external), want 2 (1 external)", sink.Certificates, sink.External)
	}
	done, _ := s.DiscoveryJob(ctx, job.ID)
	if done.State != inventory.JobDone || done.Found != 2 || len(done.Errors) != 2 {
		t.Fatalf("job = %+v, want done, 2 found, 2 errors", done)
	}
	errsByTarget := map[string]string{}
	for _, e := range done.Errors {
		errsByTarget[e.Target] = e.Error
	}
	if e := errsByTarget["127.0.0.1:"+strconv.Itoa(pClosed)]; !strings.Contains(e, "connect") {
		t.Errorf("closed port error = %q, want a connect error", e)
	}
	if e := errsByTarget["10.0.0.1:443"]; !strings.Contains(e, "allow-list") {
		t.Errorf("10.0.0.1 error = %q, want allow-list refusal", e)
	}
	ext, _ := s.FindDiscovered(ctx, inventory.DiscoveredFilter{External: true})
	if len(ext) != 1 || ext[0].CommonName != "outside.test" {
		t.Errorf("external = %+v, want outside.test", ext)
	}
	page, _ := s.Search(ctx, inventory.SearchFilter{SeenSince: time.Now().Add(-time.Minute)})
	if len(page.Certificates) != 1 || page.Certificates[0].Serial != c.Serial {
		t.Errorf("MICA certificate not matched to its record: %+v", page.Certificates)
	}
}

// TestAllowListRefusesWithoutDialling proves a refused target never
// reaches the dialler.
func TestAllowListRefusesWithoutDialling(t *testing.T) {
	t.Parallel()
	dialled := false
	sc := &discover.Scanner{Targets: []string{"10.0.0.1", "10.0.0.0/30", "192.0.2.1:8443", "[::1]:1"}, Ports: []int{443},
		Allow: discover.LoopbackOnly(), Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if !strings.HasPrefix(addr, "[::1]") {
				dialled = true
			}
			return nil, errors.New("refused by test")
		}}
	sink := &recSink{}
	if err := sc.Run(context.Background(), sink); err != nil {
		t.Fatal(err)
	}
	if dialled {
		t.Fatal("a target outside the allow-list was dialled")
	}
	if len(sink.failed) != 4 || len(sink.found) != 0 {
		t.Fatalf("failures %v, found %v; want 4 failures", sink.failed, sink.found)
	}
	for _, target := range []string{"10.0.0.1", "10.0.0.0/30", "192.0.2.1:8443"} {
		if !errors.Is(sink.failed[target], discover.ErrNotAllowed) {
			t.Errorf("%s: %v, want ErrNotAllowed", target, sink.failed[target])
		}
	}
	r := &discover.Runner{Allow: discover.LoopbackOnly()}
	if err := r.Check("scan", inventory.JobSpec{Targets: []string{"10.0.0.0/8"}}); !errors.Is(err, discover.ErrNotAllowed) {
		t.Errorf("Check(10.0.0.0/8) = %v, want ErrNotAllowed", err)
	}
	if err := r.Check("scan", inventory.JobSpec{Targets: []string{"127.0.0.0/30", "127.0.0.1:8443"}}); err != nil {
		t.Errorf("Check(loopback) = %v", err)
	}
	big := &discover.Scanner{Targets: []string{"127.0.0.0/8"}, Allow: discover.LoopbackOnly(), Dial: sc.Dial}
	sink = &recSink{}
	_ = big.Run(context.Background(), sink)
	if len(sink.failed) != 1 || !strings.Contains(sink.failed["127.0.0.0/8"].Error(), "too large") {
		t.Errorf("127.0.0.0/8 = %v, want refused as too large", sink.failed)
	}
}

type recSink struct {
	found  []discover.Found
	failed map[string]error
}

func (r *recSink) Found(_ context.Context, f discover.Found) error {
	r.found = append(r.found, f)
	return nil
}
func (r *recSink) Failed(_ context.Context, target string, err error) {
	if r.failed == nil {
		r.failed = map[string]error{}
	}
	r.failed[target] = err
}

func TestFilesImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := newKey(t)
	leaf := selfSigned(t, "pem.test", key)
	der2 := selfSigned(t, "der.test", newKey(t))
	p12Cert, _ := x509.ParseCertificate(selfSigned(t, "p12.test", key))
	p12, err := pkcs12.Modern.Encode(key, p12Cert, nil, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	files := map[string][]byte{
		"good.pem":       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf}),
		"good.der":       der2,
		"bundle.p12":     p12,
		"wrongpw.pfx":    p12,
		"broken.pem":     []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
		"key-only.pem":   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		"garbage.crt":    []byte("hello"),
		"notes.txt":      []byte("ignored: not a certificate extension"),
		"sub/nested.cer": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der2}),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := inventorytest.SQLite(t)
	sink := &discover.StoreSink{Store: s}
	src := &discover.Files{Paths: []string{dir, filepath.Join(dir, "missing.pem")}, Host: "h1", Password: func(p string) string {
		if strings.HasSuffix(p, ".p12") {
			return "s3cret"
		}
		return "wrong"
	}}
	if err := src.Run(context.Background(), sink); err != nil {
		t.Fatal(err)
	}
	if sink.Certificates != 4 || sink.External != 4 {
		t.Errorf("imported %d certificates (%d external), want 4 (good.pem, good.der, bundle.p12, nested.cer)", sink.Certificates, sink.External)
	}
	bad := map[string]bool{}
	for _, e := range sink.Errors {
		bad[filepath.Base(strings.TrimPrefix(e.Target, "h1:"))] = true
	}
	for _, name := range []string{"wrongpw.pfx", "broken.pem", "key-only.pem", "garbage.crt", "missing.pem"} {
		if !bad[name] {
			t.Errorf("%s not recorded as a failure; errors: %+v", name, sink.Errors)
		}
	}
	if len(sink.Errors) != 5 {
		t.Errorf("errors = %+v, want 5", sink.Errors)
	}
	ds, _ := s.FindDiscovered(context.Background(), inventory.DiscoveredFilter{Text: "der.test"})
	if len(ds) != 1 {
		t.Fatalf("der.test discovered %d times, want 1 (two files, one certificate)", len(ds))
	}
	inst, _ := s.Installations(context.Background(), ds[0].FingerprintSHA256)
	if len(inst) != 2 {
		t.Errorf("der.test installations = %+v, want 2", inst)
	}
}
