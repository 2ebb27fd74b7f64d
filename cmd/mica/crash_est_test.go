package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/base64"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKilledEnrollmentTokenRecovered: `mica dev` is SIGKILLed between
// signing and commit of an EST enrollment paid for by a one-time token.
// The token is consumed, the reservation is "requested", no certificate.
// Once both are older than the recovery bounds (the test ages them rather
// than wait), the restarted server's first recovery pass fails the
// reservation and hands the token back: the device's retry with the same
// credential enrolls.
func TestKilledEnrollmentTokenRecovered(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	d, dirURL := startDevKillable(t, dir, []string{"MICA_TEST_CRASH_AT=after-sign:est"})
	base := strings.TrimSuffix(dirURL, "/acme/default/directory") + "/.well-known/est"
	c := &tca{t: t, dir: dir}
	tok := c.must("est", "token", "create", "--data", dir, "--label", "default", "--ttl", "1h")
	lines := strings.Split(strings.TrimSpace(tok.stdout), "\n")
	user, pass, ok := strings.Cut(lines[len(lines)-1], ":")
	if !ok {
		t.Fatalf("est token create printed %q", tok.stdout)
	}
	pool := x509.NewCertPool()
	pool.AddCert(readCerts(t, filepath.Join(dir, rootPEM))[0])
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "killed-device"}}, key)
	enroll := func(base string) (int, error) {
		req, _ := http.NewRequest(http.MethodPost, base+"/simpleenroll", bytes.NewReader([]byte(base64.StdEncoding.EncodeToString(csr))))
		req.Header.Set("Content-Type", "application/pkcs10")
		req.SetBasicAuth(user, pass)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if code, err := enroll(base); err == nil {
		t.Fatalf("enrollment answered %d although the server was to be killed mid-issuance", code)
	}
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatal("mica dev survived the after-sign crash point")
	}
	// Age the debris past the bounds.
	db, err := sql.Open("sqlite", filepath.Join(dir, "mica.db"))
	if err != nil {
		t.Fatal(err)
	}
	aged := time.Now().Add(-2 * recoverTokenStale).UTC().Format("2006-01-02T15:04:05.000000Z")
	for _, q := range []string{`UPDATE certificates SET created_at = ? WHERE state = 'requested'`,
		`UPDATE est_tokens SET used_at = ? WHERE used_at IS NOT NULL`} {
		res, err := db.Exec(q, aged)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("%s: %d rows, want the one the crash left", q, n)
		}
	}
	db.Close()

	d2, dirURL2 := startDevKillable(t, dir, nil)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d2.stderr.String(), "crash recovery finished interrupted requests") {
		if time.Now().After(deadline) {
			t.Fatalf("no recovery pass logged within 20s of the restart:\n%s", d2.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	base2 := strings.TrimSuffix(dirURL2, "/acme/default/directory") + "/.well-known/est"
	if code, err := enroll(base2); err != nil || code != http.StatusOK {
		t.Fatalf("the device's retry after recovery = %d, %v; want 200", code, err)
	}
	if n := len(c.list("--state", "failed")); n != 1 {
		t.Errorf("%d failed reservations, want the killed one", n)
	}
}
