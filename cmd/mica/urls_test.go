package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"golang.org/x/crypto/ocsp"
)

// TestEveryCertificateURLAnswers walks the CRL Distribution Point, OCSP
// and caIssuers URLs of a leaf and of the issuing CA against a running
// `mica dev`: each answers 200 with a CRL signed by the certificate's
// issuer, an OCSP response from it, or the issuer's certificate. Then
// openssl checks the whole chain against those CRLs, downloading them
// itself (-crl_check_all -crl_download), as a relying party would.
func TestEveryCertificateURLAnswers(t *testing.T) {
	requireTool(t, "openssl")
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	// The issuing CA's URLs are written into it at the first start, so
	// the plain-HTTP port must be the one it keeps serving on.
	d := startDev(t, dir, "--http-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	c := &tca{t: t, dir: dir}
	rootPath, issuingPath := filepath.Join(dir, rootPEM), filepath.Join(dir, issuingPEM)
	root, issuing := readCerts(t, rootPath)[0], readCerts(t, issuingPath)[0]
	leafPath := filepath.Join(t.TempDir(), "leaf.pem")
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "walk.test"}), "--profile", "server", "--out", leafPath)...)
	leaf := readCerts(t, leafPath)[0]

	client := &http.Client{Timeout: 10 * time.Second}
	var rootCRL []byte // the root's CRL as served
	// fetch retries briefly: the revocation worker signs the issuing CA's
	// first CRL just after start.
	fetch := func(url string) []byte {
		t.Helper()
		var code int
		for i := 0; i < 50; i++ {
			resp, err := client.Get(url)
			if err != nil {
				t.Fatalf("GET %s: %v", url, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if code = resp.StatusCode; code == http.StatusOK {
				return body
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Errorf("GET %s = %d, want 200", url, code)
		return nil
	}
	for _, tc := range []struct {
		name         string
		cert, issuer *x509.Certificate
		wantOCSP     bool
	}{
		{"leaf", leaf, issuing, true},
		{"issuing CA", issuing, root, false},
	} {
		if len(tc.cert.CRLDistributionPoints) == 0 || len(tc.cert.IssuingCertificateURL) == 0 {
			t.Errorf("%s: CDP %v, caIssuers %v; want both", tc.name, tc.cert.CRLDistributionPoints, tc.cert.IssuingCertificateURL)
		}
		for _, u := range tc.cert.CRLDistributionPoints {
			body := fetch(u)
			crl, err := x509.ParseRevocationList(body)
			if err != nil {
				t.Errorf("%s: CRL at %s does not parse: %v", tc.name, u, err)
				continue
			}
			if err := crl.CheckSignatureFrom(tc.issuer); err != nil {
				t.Errorf("%s: CRL at %s is not signed by %s: %v", tc.name, u, tc.issuer.Subject, err)
			}
			if tc.issuer == root {
				rootCRL = body
			}
			if !crl.NextUpdate.After(time.Now()) {
				t.Errorf("%s: CRL at %s expired at %s", tc.name, u, crl.NextUpdate)
			}
		}
		for _, u := range tc.cert.IssuingCertificateURL {
			body := fetch(u)
			if blk, _ := pem.Decode(body); blk != nil {
				body = blk.Bytes
			}
			if !bytes.Equal(body, tc.issuer.Raw) {
				t.Errorf("%s: caIssuers %s did not return the issuer's certificate", tc.name, u)
			}
		}
		if got := len(tc.cert.OCSPServer) > 0; got != tc.wantOCSP {
			t.Errorf("%s: OCSP URLs %v, want present=%v", tc.name, tc.cert.OCSPServer, tc.wantOCSP)
		}
		for _, u := range tc.cert.OCSPServer {
			req, err := ocsp.CreateRequest(tc.cert, tc.issuer, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Post(u, "application/ocsp-request", bytes.NewReader(req))
			if err != nil {
				t.Fatalf("POST %s: %v", u, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s: OCSP %s = %d", tc.name, u, resp.StatusCode)
				continue
			}
			if r, err := ocsp.ParseResponseForCert(body, tc.cert, tc.issuer); err != nil || r.Status != ocsp.Good {
				t.Errorf("%s: OCSP %s: %v, %+v; want a good response from the issuer", tc.name, u, err, r)
			}
		}
	}

	// The relying party's view: openssl fetches each CDP itself. With
	// -crl_check_all it also wants the trust anchor's own CRL, which no
	// certificate points to (a root has no CDP): it is given as a file,
	// taken from the URL the issuing CA names.
	rootCRLFile := filepath.Join(t.TempDir(), "root-crl.pem")
	if err := os.WriteFile(rootCRLFile, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: rootCRL}), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runOpenSSL("verify", "-crl_check_all", "-crl_download", "-CRLfile", rootCRLFile,
		"-CAfile", rootPath, "-untrusted", issuingPath, leafPath)
	if err != nil || !strings.Contains(out, ": OK") {
		t.Errorf("openssl verify -crl_check_all -crl_download: %v\n%s", err, out)
	}
	if err := d.stop(t); err != nil {
		t.Errorf("mica dev after SIGTERM: %v", err)
	}
}

// TestRootCRLStoredAtInit: init signs and stores the root's CRL, so the
// URL every intermediate names answers even when the root key is offline
// (nothing could sign it later), with a validity that lasts until the
// next key ceremony.
func TestRootCRLStoredAtInit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		extra   []string
		minLife time.Duration
	}{
		{"online root", nil, 23 * time.Hour},
		{"offline root", []string{"--offline-root"}, 364 * 24 * time.Hour},
		{"root in its own backend", []string{"--root-backend", "softkms:dir=" + filepath.Join(t.TempDir(), "rootkeys")}, 364 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newSoftCA(t, tc.extra...)
			ctx := context.Background()
			st, err := inventory.Open(ctx, "sqlite:"+filepath.Join(c.dir, "mica.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rec, err := st.LatestCRL(ctx, "root-"+time.Now().UTC().Format("2006"), 0, false)
			if err != nil {
				t.Fatalf("no root CRL stored by init: %v", err)
			}
			der := rec.DER
			crl, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatalf("root CRL does not parse: %v", err)
			}
			root := readCerts(t, filepath.Join(c.dir, rootPEM))[0]
			if err := crl.CheckSignatureFrom(root); err != nil {
				t.Errorf("root CRL not signed by the root: %v", err)
			}
			if life := crl.NextUpdate.Sub(crl.ThisUpdate); life < tc.minLife {
				t.Errorf("root CRL lives %s, want at least %s", life, tc.minLife)
			}
		})
	}
}

// runOpenSSL runs openssl and returns its combined output and error, for
// checks whose failure output is the diagnosis.
func runOpenSSL(args ...string) (string, error) {
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

// TestOfflineRootCRLCeremony: on the root's machine `ca sign-intermediate
// --crl-out` (with no CSR) signs a fresh root CRL; `ca import-crl` on the
// online CA stores it in place of init's; importing it again, or a CRL
// no issuer signed, is refused and changes nothing.
func TestOfflineRootCRLCeremony(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	sf := writeSecret(t, t.TempDir(), "passphrase", secret)
	c := &tca{t: t, dir: filepath.Join(t.TempDir(), "data"), secrets: []string{secret}}
	c.must("init", "--data", c.dir, "--secret-file", sf, "--offline-root", "--root-id", "root", "--issuing-id", "issuing")
	offline := filepath.Join(c.dir, offlineDir)
	crlFile := filepath.Join(t.TempDir(), "root.crl")
	c.must("ca", "sign-intermediate", "--root-backend", "softkms:dir="+offline, "--root-id", "root",
		"--root-cert", filepath.Join(offline, rootPEM), "--crl-out", crlFile, "--crl-validity", "400d", "--secret-file", sf)
	r := c.must(c.data("ca", "import-crl", crlFile)...)
	if !strings.Contains(r.stdout, "CRL of root stored") {
		t.Errorf("import-crl output: %s", r.stdout)
	}
	ctx := context.Background()
	st, err := inventory.Open(ctx, "sqlite:"+filepath.Join(c.dir, "mica.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.LatestCRL(ctx, "root", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(crlFile)
	if !bytes.Equal(got.DER, want) {
		t.Errorf("stored root CRL is not the imported one (number %d)", got.Number)
	}
	wantExit(t, c.run(c.data("ca", "import-crl", crlFile)...), exitConfig, "not newer")
	// A CRL of the issuing CA signed by nobody we know: a CRL of another CA.
	other := newSoftCA(t)
	otherCRL := filepath.Join(t.TempDir(), "other.crl")
	st2, err := inventory.Open(ctx, "sqlite:"+filepath.Join(other.dir, "mica.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	rec, err := st2.LatestCRL(ctx, "root-"+time.Now().UTC().Format("2006"), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherCRL, rec.DER, 0o644); err != nil {
		t.Fatal(err)
	}
	wantExit(t, c.run(c.data("ca", "import-crl", otherCRL)...), exitConfig, "not signed by any issuer")
}
