package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// devRun is a running `mica dev`.
type devRun struct {
	cmd    *exec.Cmd
	stdout string // everything up to the banner's end
	stderr *lockedBuffer
	done   chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDev starts mica dev on random loopback ports, with extra flags,
// and waits for its banner.
func startDev(t *testing.T, dir string, extra ...string) *devRun {
	t.Helper()
	cmd := exec.Command(micaBin, append([]string{"dev", "--data", dir, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, extra...)...)
	cmd.Env = baseEnv()
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
			cmd.Process.Kill()
			<-d.done
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		// Drain anything later so the child never blocks on a full pipe.
		io.Copy(io.Discard, pipe)
		d.done <- cmd.Wait()
	}()
	var out strings.Builder
	timeout := time.After(90 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("mica dev exited before its banner:\n%s\nstderr:\n%s", out.String(), d.stderr)
			}
			out.WriteString(l + "\n")
			if strings.TrimSpace(l) == bannerEnd {
				d.stdout = out.String()
				go func() {
					for range lines {
					}
				}()
				return d
			}
		case <-timeout:
			t.Fatalf("no banner from mica dev within 90s:\n%s\nstderr:\n%s", out.String(), d.stderr)
		}
	}
}

// stop sends SIGTERM and returns the exit error (nil for exit 0).
func (d *devRun) stop(t *testing.T) error {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("mica dev did not stop within 30s of SIGTERM")
		return nil
	}
}

var (
	reFingerprint = regexp.MustCompile(`Root SHA-256 fingerprint: ([0-9A-F:]{95})`)
	reHTTPS       = regexp.MustCompile(`https://127\.0\.0\.1:\d+`)
	reHTTP        = regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	reCAURL       = regexp.MustCompile(`http://127\.0\.0\.1:\d+/ca/[a-z0-9._-]+\.crt`)
)

// TestDev: first run initialises with a generated passphrase and a
// warning, prints fingerprint and URLs, serves /healthz on both listeners
// with an HTTPS certificate that verifies against the printed root and
// names 127.0.0.1, serves /ca/{issuer}.crt, stops cleanly on SIGTERM; the
// second run reuses the directory.
func TestDev(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, dir)
	stderr := d.stderr.String()
	if !strings.Contains(stderr, "WARNING") || !strings.Contains(stderr, "NOT") || !strings.Contains(stderr, "HSM-backed") {
		t.Errorf("no software-key warning on stderr:\n%s", stderr)
	}
	fi, err := os.Stat(filepath.Join(dir, passphraseFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("passphrase file: %v, mode %v; want 0600", err, fi)
	}
	pass, _ := os.ReadFile(filepath.Join(dir, passphraseFile))
	secret := strings.TrimSpace(string(pass))

	rootPath := filepath.Join(dir, rootPEM)
	if !strings.Contains(d.stdout, "Root certificate: "+rootPath) {
		t.Errorf("banner lacks the root path %s:\n%s", rootPath, d.stdout)
	}
	root := readCerts(t, rootPath)[0]
	sum := sha256.Sum256(root.Raw)
	m := reFingerprint.FindStringSubmatch(d.stdout)
	if m == nil || strings.ReplaceAll(m[1], ":", "") != strings.ToUpper(hex.EncodeToString(sum[:])) {
		t.Errorf("banner fingerprint %v does not match root.pem's SHA-256 %X:\n%s", m, sum, d.stdout)
	}
	// Cross-check against openssl's own rendering.
	if fp := openssl(t, "x509", "-in", rootPath, "-noout", "-fingerprint", "-sha256"); m != nil && !strings.Contains(fp, m[1]) {
		t.Errorf("openssl says %s, banner says %s", fp, m[1])
	}

	httpsBase, plainBase := reHTTPS.FindString(d.stdout), reHTTP.FindString(d.stdout)
	if httpsBase == "" || plainBase == "" {
		t.Fatalf("banner lacks the listener URLs:\n%s", d.stdout)
	}
	for _, want := range []string{httpsBase + "/healthz", plainBase + "/healthz", "/metrics", "/crl/", "/ocsp"} {
		if !strings.Contains(d.stdout, want) {
			t.Errorf("banner lacks %s:\n%s", want, d.stdout)
		}
	}

	pool := x509.NewCertPool()
	pool.AddCert(root)
	var peer *x509.Certificate
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			peer = cs.PeerCertificates[0]
			return nil
		},
	}}}
	get := func(url string) (int, []byte) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for _, u := range []string{httpsBase + "/healthz", plainBase + "/healthz", httpsBase + "/metrics", plainBase + "/metrics"} {
		if code, _ := get(u); code != 200 {
			t.Errorf("GET %s = %d, want 200", u, code)
		}
	}
	if peer == nil || !hasIP(peer, "127.0.0.1") {
		t.Errorf("HTTPS certificate does not name 127.0.0.1: %v", peer)
	}

	caURLs := reCAURL.FindAllString(d.stdout, -1)
	if len(caURLs) < 2 {
		t.Errorf("banner lists %d /ca/ URLs, want root and issuing:\n%s", len(caURLs), d.stdout)
	}
	issuing := readCerts(t, filepath.Join(dir, issuingPEM))[0]
	seen := map[string]bool{}
	for _, u := range caURLs {
		code, body := get(u)
		if code != 200 {
			t.Errorf("GET %s = %d", u, code)
			continue
		}
		switch {
		case bytes.Equal(body, root.Raw):
			seen["root"] = true
		case bytes.Equal(body, issuing.Raw):
			seen["issuing"] = true
		default:
			t.Errorf("GET %s returned %d bytes that are neither root nor issuing DER", u, len(body))
		}
	}
	if !seen["root"] || !seen["issuing"] {
		t.Errorf("/ca/ served %v, want root and issuing", seen)
	}

	if err := d.stop(t); err != nil {
		t.Errorf("mica dev after SIGTERM: %v, want exit 0\nstderr:\n%s", err, d.stderr)
	}
	if strings.Contains(d.stdout+d.stderr.String(), secret) {
		t.Error("the generated passphrase appeared in mica dev's output")
	}

	// Second run: same directory, same root, no new initialisation.
	d2 := startDev(t, dir)
	if !strings.Contains(d2.stderr.String(), "reusing") {
		t.Errorf("second run did not say it reuses %s:\n%s", dir, d2.stderr)
	}
	if m2 := reFingerprint.FindStringSubmatch(d2.stdout); m == nil || m2 == nil || m2[1] != m[1] {
		t.Errorf("second run root fingerprint %v, first %v", m2, m)
	}
	if pass2, _ := os.ReadFile(filepath.Join(dir, passphraseFile)); !bytes.Equal(pass, pass2) {
		t.Error("second run replaced the passphrase")
	}
	if code, _ := get(reHTTPS.FindString(d2.stdout) + "/healthz"); code != 200 {
		t.Errorf("second run /healthz = %d", code)
	}
	if err := d2.stop(t); err != nil {
		t.Errorf("second mica dev after SIGTERM: %v\nstderr:\n%s", err, d2.stderr)
	}
}

func hasIP(c *x509.Certificate, ip string) bool {
	for _, a := range c.IPAddresses {
		if a.Equal(net.ParseIP(ip)) {
			return true
		}
	}
	return false
}
