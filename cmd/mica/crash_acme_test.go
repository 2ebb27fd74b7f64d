package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme/acmetest"
)

// startDevKillable is startDev with extra environment (the crash point)
// and without a SIGINT cleanup expectation: the process may die on its
// own. It returns the running dev and its ACME directory URL.
func startDevKillable(t *testing.T, dir string, env []string, extra ...string) (*devRun, string) {
	t.Helper()
	cmd := exec.Command(micaBin, append([]string{"dev", "--data", dir, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, extra...)...)
	cmd.Env = append(baseEnv(), env...)
	d := &devRun{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = d.stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-d.done
		}
	})
	dirURL := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if u := reDirectory.FindString(sc.Text()); u != "" {
				select {
				case dirURL <- u:
				default:
				}
			}
		}
		d.done <- cmd.Wait()
	}()
	select {
	case u := <-dirURL:
		return d, u
	case <-time.After(90 * time.Second):
		t.Fatalf("no ACME directory from mica dev within 90s:\n%s", d.stderr)
		return nil, ""
	}
}

// TestKilledFinalizeIsRecovered: `mica dev` is SIGKILLed (the ca crash
// point after-commit) while finalizing an ACME order: the certificate is
// committed, the order is not. After a restart on the same directory, the
// client polling its order gets "valid" and exactly the certificate that
// was committed, instead of "processing" forever.
func TestKilledFinalizeIsRecovered(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t)
	dns := acmetest.NewDNS(t)
	d, dirURL := startDevKillable(t, c.dir, []string{"MICA_TEST_CRASH_AT=after-commit:acme"}, "--dns-resolver", dns.Addr)
	root := readCerts(t, filepath.Join(c.dir, rootPEM))[0]
	pool := x509.NewCertPool()
	pool.AddCert(root)
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := &xacme.Client{Key: key, DirectoryURL: dirURL, HTTPClient: hc}
	if _, err := cl.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	o, err := cl.AuthorizeOrder(ctx, xacme.DomainIDs("killed.test"))
	if err != nil {
		t.Fatal(err)
	}
	z, err := cl.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range z.Challenges {
		if ch.Type != "dns-01" {
			continue
		}
		v, _ := cl.DNS01ChallengeRecord(ch.Token)
		dns.SetTXT("_acme-challenge.killed.test", v)
		if _, err := cl.Accept(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.WaitAuthorization(ctx, o.AuthzURLs[0]); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{DNSNames: []string{"killed.test"}}
	ck, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, tmpl, ck)
	if _, _, err := cl.CreateOrderCert(ctx, o.FinalizeURL, csr, true); err == nil {
		t.Fatal("finalize succeeded although the server was to be killed after the commit")
	}
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatal("mica dev survived the after-commit crash point")
	}
	committed := c.list("--state", "issued", "-q", "killed.test")
	if len(committed) != 1 {
		t.Fatalf("after SIGKILL: %d issued certificates for killed.test, want 1 (committed before the kill)", len(committed))
	}

	_, dirURL2 := startDevKillable(t, c.dir, nil, "--dns-resolver", dns.Addr)
	base := strings.TrimSuffix(dirURL, "/acme/default/directory")
	base2 := strings.TrimSuffix(dirURL2, "/acme/default/directory")
	cl2 := &xacme.Client{Key: key, DirectoryURL: dirURL2, HTTPClient: hc}
	if _, err := cl2.GetReg(ctx, ""); err != nil {
		t.Fatal(err)
	}
	got, err := cl2.GetOrder(ctx, strings.Replace(o.URI, base, base2, 1))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != xacme.StatusValid || got.CertURL == "" {
		t.Fatalf("order after the restart = %s, want valid with its certificate", got.Status)
	}
	ders, err := cl2.FetchCert(ctx, got.CertURL, true)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	want, ok := new(big.Int).SetString(strings.ReplaceAll(committed[0].Serial, ":", ""), 16)
	if !ok || want.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("the order's certificate has serial %x, the committed one %s", leaf.SerialNumber, committed[0].Serial)
	}
	if !ck.PublicKey.Equal(leaf.PublicKey) {
		t.Fatal("the order's certificate is not for the CSR's key")
	}
}
