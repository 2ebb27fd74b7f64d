package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// recipes splits the banner's "Get a certificate" part into its commands,
// keyed by their "# title" line.
func recipes(banner string) map[string]string {
	out := map[string]string{}
	_, rest, _ := strings.Cut(banner, "Get a certificate")
	for _, block := range strings.Split(rest, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if len(lines) < 2 || !strings.HasPrefix(lines[0], "# ") {
			continue
		}
		out[lines[0]] = strings.Join(lines[1:], "\n")
	}
	return out
}

func recipe(t *testing.T, all map[string]string, prefix string) string {
	t.Helper()
	for title, cmd := range all {
		if strings.HasPrefix(title, prefix) {
			return cmd
		}
	}
	t.Fatalf("banner has no recipe %q; it has %v", prefix, all)
	return ""
}

var reBannerURL = regexp.MustCompile(`https?://[^\s)]+`)

// verifyWithCRLs checks the certificate in the PEM file leaf with
// `openssl verify -crl_check_all -crl_download` against the `mica dev` CA
// in dir: openssl fetches the issuing CA's CRL from the leaf's CDP and the
// root's from the issuing CA's. -crl_check_all wants the root's own CRL
// too, which no certificate points to, so it is fetched from the issuing
// CA's CDP first (into work).
func verifyWithCRLs(t *testing.T, dir, work, name, leaf string) {
	t.Helper()
	rootPath, issuingPath := filepath.Join(dir, rootPEM), filepath.Join(dir, issuingPEM)
	issuing := readCerts(t, issuingPath)[0]
	rootCRL := filepath.Join(work, "root-crl.der")
	if out, err := exec.Command("bash", "-euo", "pipefail", "-c", "curl -sS --fail -o "+rootCRL+" "+issuing.CRLDistributionPoints[0]+
		" && openssl crl -inform DER -in "+rootCRL+" -out "+rootCRL+".pem").CombinedOutput(); err != nil {
		t.Fatalf("%s: fetching the root CRL: %v\n%s", name, err, out)
	}
	out, err := runOpenSSL("verify", "-crl_check_all", "-crl_download", "-CRLfile", rootCRL+".pem",
		"-CAfile", rootPath, "-untrusted", issuingPath, leaf)
	if err != nil || !strings.Contains(out, ": OK") {
		t.Errorf("%s: openssl verify -crl_check_all: %v\n%s", name, err, out)
	}
}

// TestDevRecipesWorkAsPrinted starts `mica dev` with nothing but ports
// (no DNS server, no --dns-resolver), runs the certbot, lego (http-01 and
// tls-alpn-01), curl EST and CLI recipes of its banner verbatim in a
// shell, and checks that each produced a certificate that openssl
// verifies with CRL checking of the whole chain; every URL the banner
// lists answers a GET with something other than 404.
func TestDevRecipesWorkAsPrinted(t *testing.T) {
	for _, tool := range []string{"certbot", "lego", "curl", "openssl", "bash"} {
		requireTool(t, tool)
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, dir, "--http-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--http01-port", fmt.Sprint(freePort(t)), "--tlsalpn01-port", fmt.Sprint(freePort(t)))
	all := recipes(d.stdout)
	rootPath := filepath.Join(dir, rootPEM)

	// Every URL in the list answers.
	urls, _, _ := strings.Cut(d.stdout, "Get a certificate")
	pool := x509.NewCertPool()
	pool.AddCert(readCerts(t, rootPath)[0])
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	found := reBannerURL.FindAllString(urls, -1)
	if len(found) < 10 {
		t.Errorf("banner lists %d URLs:\n%s", len(found), urls)
	}
	for _, u := range found {
		var code int
		for i := 0; i < 50; i++ { // the first CRLs are signed just after start
			resp, err := client.Get(u)
			if err != nil {
				t.Fatalf("GET %s: %v", u, err)
			}
			resp.Body.Close()
			if code = resp.StatusCode; code != http.StatusNotFound {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if code == http.StatusNotFound {
			t.Errorf("banner URL %s answers 404", u)
		}
	}
	if strings.Count(urls, "/.well-known/est/") != 1 {
		t.Errorf("banner lists EST %d times:\n%s", strings.Count(urls, "/.well-known/est/"), urls)
	}

	work := t.TempDir()
	run := func(name, cmdline string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", cmdline)
		cmd.Dir = work
		cmd.Env = append(baseEnv(), "PATH="+filepath.Dir(micaBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s recipe failed: %v\n%s\n%s\nmica dev stderr:\n%s", name, err, cmdline, out, d.stderr)
		}
	}
	verify := func(name, leaf string) {
		t.Helper()
		verifyWithCRLs(t, dir, work, name, leaf)
	}
	for _, tc := range []struct {
		title, leaf string
	}{
		{"# certbot", "certbot/live/certbot.test/cert.pem"},
		{"# lego, http-01", "lego/certificates/lego.test.crt"},
		{"# lego, tls-alpn-01", "lego/certificates/alpn.test.crt"},
		{"# EST", "device.pem"},
		{"# mica CLI", "cli.pem"},
	} {
		run(tc.title, recipe(t, all, tc.title))
		verify(tc.title, filepath.Join(work, tc.leaf))
	}
	caddy := recipe(t, all, "# Caddy")
	for _, want := range []string{"acme_ca https://", "acme_ca_root " + rootPath, "caddy.test {"} {
		if !strings.Contains(caddy, want) {
			t.Errorf("Caddyfile recipe lacks %q:\n%s", want, caddy)
		}
	}
}

// TestDevCaddyRecipe runs the banner's Caddyfile with an unmodified Caddy:
// Caddy gets its certificate from `mica dev` through acme_ca and serves
// it, the banner's curl reaches it over that certificate, and the
// certificate Caddy serves verifies with CRL checking of the whole chain.
func TestDevCaddyRecipe(t *testing.T) {
	needClients(t, "caddy", "curl", "openssl", "bash")
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	// A fixed plain-HTTP port, as a first `mica dev` run keeps it: the
	// CRL URLs in the certificates point there.
	d := startDev(t, dir, "--http-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--http01-port", fmt.Sprint(freePort(t)), "--tlsalpn01-port", fmt.Sprint(freePort(t)))
	all := recipes(d.stdout)
	work := t.TempDir()
	title := ""
	for k := range all {
		if strings.HasPrefix(k, "# Caddy") {
			title = k
		}
	}
	_, runCmd, ok := strings.Cut(title, "then run: ")
	if !ok {
		t.Fatalf("Caddy recipe title %q names no command", title)
	}
	if err := os.WriteFile(filepath.Join(work, "Caddyfile"), []byte(all[title]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	caddy := exec.Command("bash", "-c", "exec "+runCmd)
	caddy.Dir = work
	// Caddy keeps its certificates under XDG_DATA_HOME; keep them here.
	caddy.Env = append(baseEnv(), "XDG_DATA_HOME="+work, "XDG_CONFIG_HOME="+work)
	var caddyOut lockedBuffer
	caddy.Stdout, caddy.Stderr = &caddyOut, &caddyOut
	if err := caddy.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		caddy.Process.Kill()
		caddy.Wait()
	}()
	curl := recipe(t, all, "# then ask Caddy")
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := exec.Command("bash", "-c", curl).CombinedOutput()
		if err == nil && strings.Contains(string(out), "hello from caddy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Caddy never served over a MICA certificate: %v\n%s\ncaddy:\n%s", err, out, caddyOut.String())
		}
		time.Sleep(time.Second)
	}
	// The certificate Caddy serves, taken from the handshake the recipe's
	// curl makes, verifies with CRL checking like the other recipes'.
	m := regexp.MustCompile(`--resolve (caddy\.test):(\d+):(\S+)`).FindStringSubmatch(curl)
	if m == nil {
		t.Fatalf("Caddy curl recipe has no --resolve: %s", curl)
	}
	pool := x509.NewCertPool()
	pool.AddCert(readCerts(t, filepath.Join(dir, rootPEM))[0])
	conn, err := tls.Dial("tcp", net.JoinHostPort(m[3], m[2]), &tls.Config{ServerName: m[1], RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS to Caddy: %v", err)
	}
	served := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if len(served.DNSNames) != 1 || served.DNSNames[0] != "caddy.test" || len(served.CRLDistributionPoints) == 0 {
		t.Fatalf("Caddy serves %v with CDP %v, want a MICA certificate for caddy.test", served.DNSNames, served.CRLDistributionPoints)
	}
	leaf := filepath.Join(work, "caddy-served.pem")
	if err := os.WriteFile(leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: served.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	verifyWithCRLs(t, dir, work, "# Caddy", leaf)
}
