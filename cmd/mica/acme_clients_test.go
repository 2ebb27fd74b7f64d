package main

// Acceptance tests of the ACME server with the real clients Debian ships
// (certbot 2.1, lego 4.9.1) against the real `mica dev` binary on
// loopback. A test DNS server (acme/acmetest) resolves every name to
// 127.0.0.1 and publishes the TXT records the clients' hooks set through
// its HTTP API; mica validates through it with --dns-resolver, and reaches
// the clients' own http-01 and tls-alpn-01 responders through
// --http01-port and --tlsalpn01-port.

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
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

	jose "github.com/go-jose/go-jose/v4"
	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme/acmetest"
	"github.com/mica-pki/mica/internal/testtool"
	"github.com/mica-pki/mica/inventory"
)

// acmeLab is one mica dev with its DNS server and client ports.
type acmeLab struct {
	t                  *testing.T
	ca                 *tca
	dns                *acmetest.DNS
	dir, corpDir, root string
	http01, tlsALPN01  int
	hook               string // dns-01 hook for certbot
	legoHook           string // EXEC_PATH for lego
}

var reDirectory = regexp.MustCompile(`https://127\.0\.0\.1:\d+/acme/default/directory`)

func needClients(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		testtool.Need(t, n)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func newACMELab(t *testing.T) *acmeLab {
	t.Helper()
	l := &acmeLab{t: t, ca: newSoftCA(t), dns: acmetest.NewDNS(t), http01: freePort(t), tlsALPN01: freePort(t)}
	// A second directory that requires external account binding.
	cfg := filepath.Join(l.ca.dir, "mica.yaml")
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "acme:\n  profiles:\n    default:\n      ca_profiles: [server]\n    corp:\n      ca_profiles: [server]\n      eab: required\n")
	f.Close()
	d := startDev(t, l.ca.dir, "--http01-port", fmt.Sprint(l.http01), "--tlsalpn01-port", fmt.Sprint(l.tlsALPN01), "--dns-resolver", l.dns.Addr)
	l.dir = reDirectory.FindString(d.stdout)
	if l.dir == "" {
		t.Fatalf("no ACME directory in the banner:\n%s", d.stdout)
	}
	l.corpDir = strings.Replace(l.dir, "/default/", "/corp/", 1)
	l.root = filepath.Join(l.ca.dir, rootPEM)
	hooks := t.TempDir()
	l.hook = filepath.Join(hooks, "certbot-hook.sh")
	l.legoHook = filepath.Join(hooks, "lego-hook.sh")
	writeScript(t, l.hook, fmt.Sprintf(`#!/bin/sh
if [ -n "$CERTBOT_AUTH_OUTPUT" ] || [ "$1" = cleanup ]; then
  exec curl -sf -d "{\"host\":\"_acme-challenge.$CERTBOT_DOMAIN.\"}" %[1]s/clear-txt
fi
exec curl -sf -d "{\"host\":\"_acme-challenge.$CERTBOT_DOMAIN.\",\"value\":\"$CERTBOT_VALIDATION\"}" %[1]s/set-txt
`, l.dns.API))
	writeScript(t, l.legoHook, fmt.Sprintf(`#!/bin/sh
case "$1" in
present) exec curl -sf -d "{\"host\":\"$2\",\"value\":\"$3\"}" %[1]s/set-txt ;;
cleanup) exec curl -sf -d "{\"host\":\"$2\"}" %[1]s/clear-txt ;;
esac
`, l.dns.API))
	return l
}

func writeScript(t *testing.T, path, body string) {
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// client runs an ACME client with the lab's root trusted.
func (l *acmeLab) client(env []string, name string, args ...string) string {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+l.root, "LEGO_CA_CERTIFICATES="+l.root)
	cmd.Env = append(cmd.Env, env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	l.t.Logf("%s %s: %s", name, args[len(args)-1], time.Since(start).Round(time.Millisecond))
	if err != nil {
		for i, a := range args {
			if a == "--logs-dir" && i+1 < len(args) {
				if b, rerr := os.ReadFile(filepath.Join(args[i+1], "letsencrypt.log")); rerr == nil {
					lines := strings.Split(string(b), "\n")
					out = append(out, strings.Join(lines[max(0, len(lines)-80):], "\n")...)
				}
			}
		}
		l.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// certState reads a certificate's inventory record through the CLI.
func (l *acmeLab) certRecord(pemPath string) map[string]any {
	l.t.Helper()
	serial := strings.TrimPrefix(strings.TrimSpace(openssl(l.t, "x509", "-in", pemPath, "-noout", "-serial")), "serial=")
	r := l.ca.must(l.ca.data("cert", "show", serial, "--json")...)
	var rec map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
		l.t.Fatalf("cert show --json: %v\n%s", err, r.stdout)
	}
	return rec
}

// eabKey creates an EAB key for profile corp with the CLI.
func (l *acmeLab) eabKey() (kid, hmac string) {
	l.t.Helper()
	out := l.ca.must(l.ca.data("acme", "eab", "create", "--profile", "corp")...).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, ln := range lines {
		if k, ok := strings.CutPrefix(ln, "kid: "); ok {
			kid = k
		}
	}
	hmac = lines[len(lines)-1]
	if kid == "" || len(hmac) != 43 {
		l.t.Fatalf("acme eab create printed:\n%s", out)
	}
	return kid, hmac
}

func TestCertbot(t *testing.T) {
	needClients(t, "certbot", "curl")
	t.Parallel()
	l := newACMELab(t)
	cfg := t.TempDir()
	common := []string{"--server", l.dir, "--agree-tos", "--register-unsafely-without-email", "--non-interactive",
		"--config-dir", cfg, "--work-dir", cfg, "--logs-dir", cfg}
	standalone := []string{"--standalone", "--http-01-port", fmt.Sprint(l.http01), "--http-01-address", "127.0.0.1"}

	// http-01 with certbot's own standalone server.
	l.client(nil, "certbot", append(append([]string{"certonly", "-d", "a.test", "--cert-name", "a"}, common...), standalone...)...)
	first := filepath.Join(cfg, "live", "a", "cert.pem")
	rec := l.certRecord(first)
	if rec["state"] != "issued" || rec["protocol"] != "acme" || !strings.Contains(fmt.Sprint(rec["requester"]), "/acme/default/acct/") {
		t.Fatalf("inventory record of certbot's certificate: %v", rec)
	}
	firstSerial := rec["serial"]

	// dns-01 through hooks, with a wildcard.
	l.client(nil, "certbot", append([]string{"certonly", "-d", "*.w.test", "-d", "w.test", "--cert-name", "w", "--manual",
		"--preferred-challenges", "dns", "--manual-auth-hook", l.hook, "--manual-cleanup-hook", l.hook + " cleanup"}, common...)...)
	wild := openssl(t, "x509", "-in", filepath.Join(cfg, "live", "w", "cert.pem"), "-noout", "-ext", "subjectAltName")
	if !strings.Contains(wild, "DNS:*.w.test") || !strings.Contains(wild, "DNS:w.test") {
		t.Fatalf("wildcard certificate SANs: %s", wild)
	}

	// Renewal links the new certificate to its predecessor.
	l.client(nil, "certbot", append(append([]string{"renew", "--cert-name", "a", "--force-renewal", "--no-random-sleep-on-renew"}, common[2:]...), "--server", l.dir)...)
	renewed := l.certRecord(filepath.Join(cfg, "live", "a", "cert.pem"))
	if sameSerial(renewed["serial"], firstSerial) || !sameSerial(renewed["predecessor"], firstSerial) {
		t.Fatalf("renewal %v does not name its predecessor %v", renewed, firstSerial)
	}

	// Revocation with the account key.
	l.client(nil, "certbot", append([]string{"revoke", "--cert-name", "a", "--reason", "keycompromise", "--no-delete-after-revoke"}, common...)...)
	if rec := l.certRecord(filepath.Join(cfg, "live", "a", "cert.pem")); rec["state"] != "revoked" || rec["revocation_reason"] != "keyCompromise" {
		t.Fatalf("after certbot revoke: %v", rec)
	}

	// Unregister: the account is deactivated and cannot order. certbot
	// deletes its account files, so read the key and URL first.
	acctKey, acctURL := certbotAccount(t, cfg)
	l.client(nil, "certbot", append([]string{"unregister"}, common...)...)
	if a := l.account(acctURL); a.Status != "deactivated" {
		t.Fatalf("after certbot unregister the account is %q, want deactivated", a.Status)
	}
	l.refusedOrder(acctKey, acctURL)

	// EAB on the corp directory.
	kid, hmac := l.eabKey()
	corp := t.TempDir()
	corpArgs := []string{"--server", l.corpDir, "--agree-tos", "--register-unsafely-without-email", "--non-interactive",
		"--config-dir", corp, "--work-dir", corp, "--logs-dir", corp}
	l.client(nil, "certbot", append(append([]string{"certonly", "-d", "e.test", "--eab-kid", kid, "--eab-hmac-key", hmac}, corpArgs...), standalone...)...)
	if rec := l.certRecord(filepath.Join(corp, "live", "e.test", "cert.pem")); !strings.Contains(fmt.Sprint(rec["requester"]), "/acme/corp/acct/") {
		t.Fatalf("EAB certificate record: %v", rec)
	}
}

func TestLego(t *testing.T) {
	needClients(t, "lego", "curl")
	t.Parallel()
	l := newACMELab(t)
	path := t.TempDir()
	base := []string{"--server", l.dir, "--accept-tos", "--email", "a@b.test", "--path", path}
	httpArgs := []string{"--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", l.http01)}

	l.client(nil, "lego", append(append(append(base, "--domains", "l.test"), httpArgs...), "run")...)
	crt := filepath.Join(path, "certificates", "l.test.crt")
	first := l.certRecord(crt)

	l.client(nil, "lego", append(append(base, "--domains", "t.test", "--tls", "--tls.port", fmt.Sprintf("127.0.0.1:%d", l.tlsALPN01)), "run")...)
	if rec := l.certRecord(filepath.Join(path, "certificates", "t.test.crt")); rec["state"] != "issued" {
		t.Fatalf("tls-alpn-01 certificate: %v", rec)
	}

	l.client([]string{"EXEC_PATH=" + l.legoHook, "EXEC_PROPAGATION_TIMEOUT=30", "EXEC_POLLING_INTERVAL=1", "EXEC_SEQUENCE_INTERVAL=1"}, "lego",
		append(base, "--domains", "d.test", "--domains", "*.d.test", "--dns", "exec", "--dns.resolvers", l.dns.Addr, "--dns.disable-cp", "run")...)
	if rec := l.certRecord(filepath.Join(path, "certificates", "d.test.crt")); rec["state"] != "issued" {
		t.Fatalf("dns-01 certificate: %v", rec)
	}

	l.client(nil, "lego", append(append(append(base, "--domains", "l.test"), httpArgs...), "renew", "--days", "90", "--no-random-sleep")...)
	renewed := l.certRecord(crt)
	if sameSerial(renewed["serial"], first["serial"]) || !sameSerial(renewed["predecessor"], first["serial"]) {
		t.Fatalf("lego renewal %v does not name its predecessor %v", renewed, first["serial"])
	}

	l.client(nil, "lego", append(base, "--domains", "l.test", "revoke", "--keep")...)
	if rec := l.certRecord(crt); rec["state"] != "revoked" {
		t.Fatalf("after lego revoke: %v", rec)
	}

	kid, hmac := l.eabKey()
	corp := t.TempDir()
	l.client(nil, "lego", append([]string{"--server", l.corpDir, "--accept-tos", "--email", "a@b.test", "--path", corp,
		"--eab", "--kid", kid, "--hmac", hmac, "--domains", "e.test"}, append(httpArgs, "run")...)...)
	// The account lego created is bound to that EAB key, both ways.
	acctURL := legoAccountURL(t, corp)
	a := l.account(acctURL)
	if a.EABKeyID != kid || a.Profile != "corp" {
		t.Fatalf("lego's EAB account %s: EAB key %q profile %q, want %q corp", acctURL, a.EABKeyID, a.Profile, kid)
	}
	l.withStore(func(st *inventory.Store) {
		k, err := st.ACMEEABKey(context.Background(), kid)
		if err != nil || k.AccountID != a.ID {
			t.Fatalf("EAB key %s: %+v %v, want bound to account %s", kid, k, err, a.ID)
		}
	})
	if rec := l.certRecord(filepath.Join(corp, "certificates", "e.test.crt")); !strings.HasSuffix(fmt.Sprint(rec["requester"]), "/acme/corp/acct/"+a.ID) {
		t.Fatalf("EAB certificate record: %v, want requester %s", rec, acctURL)
	}
}

// withStore opens the lab's inventory (SQLite, shared with the running
// mica dev) for one look.
func (l *acmeLab) withStore(f func(*inventory.Store)) {
	l.t.Helper()
	st, err := inventory.Open(context.Background(), "sqlite:"+filepath.Join(l.ca.dir, "mica.db"))
	if err != nil {
		l.t.Fatal(err)
	}
	defer st.Close()
	f(st)
}

// account reads the store's row for the ACME account at acctURL (its
// last path segment is the account ID).
func (l *acmeLab) account(acctURL string) *inventory.ACMEAccount {
	l.t.Helper()
	id := acctURL[strings.LastIndex(acctURL, "/")+1:]
	if id == "" || !strings.Contains(acctURL, "/acct/") {
		l.t.Fatalf("not an account URL: %q", acctURL)
	}
	var a *inventory.ACMEAccount
	l.withStore(func(st *inventory.Store) {
		var err error
		if a, err = st.ACMEAccount(context.Background(), inventory.ACMEAccountFilter{ID: id}); err != nil {
			l.t.Fatalf("account %s: %v", id, err)
		}
	})
	return a
}

// refusedOrder tries a new order as the account at acctURL, signed with
// its key, and requires the server to refuse it with 401 unauthorized
// (RFC 8555 §7.3.6: a deactivated account's requests are refused).
func (l *acmeLab) refusedOrder(key crypto.Signer, acctURL string) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pemBytes, err := os.ReadFile(l.root)
	if err != nil {
		l.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	cl := &xacme.Client{Key: key, KID: xacme.KeyID(acctURL), DirectoryURL: l.dir,
		HTTPClient: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	o, err := cl.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "after-unregister.test"}})
	var pe *xacme.Error
	if !errors.As(err, &pe) || pe.StatusCode != http.StatusUnauthorized || pe.ProblemType != "urn:ietf:params:acme:error:unauthorized" {
		l.t.Fatalf("order by the unregistered account: %+v %v, want 401 unauthorized", o, err)
	}
}

// certbotAccount reads the one account certbot keeps under cfg: its key
// (a JWK in private_key.json) and its URL (regr.json).
func certbotAccount(t *testing.T, cfg string) (crypto.Signer, string) {
	t.Helper()
	regs, _ := filepath.Glob(filepath.Join(cfg, "accounts", "*", "acme", "default", "directory", "*", "regr.json"))
	if len(regs) != 1 {
		t.Fatalf("certbot accounts under %s: %v, want one", cfg, regs)
	}
	var regr struct{ URI string }
	readJSON(t, regs[0], &regr)
	var jwk jose.JSONWebKey
	readJSON(t, filepath.Join(filepath.Dir(regs[0]), "private_key.json"), &jwk)
	key, ok := jwk.Key.(crypto.Signer)
	if !ok || regr.URI == "" {
		t.Fatalf("certbot account: key %T, uri %q", jwk.Key, regr.URI)
	}
	return key, regr.URI
}

// legoAccountURL reads the account URL lego saved under path.
func legoAccountURL(t *testing.T, path string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(path, "accounts", "*", "*", "account.json"))
	if len(files) != 1 {
		t.Fatalf("lego accounts under %s: %v, want one", path, files)
	}
	var acct struct {
		Registration struct{ URI string } `json:"registration"`
	}
	readJSON(t, files[0], &acct)
	if acct.Registration.URI == "" {
		t.Fatalf("%s has no registration URI", files[0])
	}
	return acct.Registration.URI
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// sameSerial compares serials as the CLI prints them (upper case, padded)
// and as the store keeps them (lower case, no leading zeros).
func sameSerial(a, b any) bool {
	norm := func(v any) string { return strings.TrimLeft(strings.ToLower(fmt.Sprint(v)), "0") }
	return norm(a) == norm(b)
}
