//go:build chaos

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme/acmetest"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestChaos is the kill -9 harness of issue 14 (build tag chaos, run by
// scripts/chaos.sh): ACME clients that issue and revoke and EST devices
// with one-time tokens, against `mica dev` on SQLite and against two
// `mica serve` replicas on one PostgreSQL (a scratch schema), a random
// one SIGKILLed every 2–5 s (aimed at a finalize in flight) and
// restarted, for MICA_CHAOS_SECONDS each (default 30). Then one last
// start with MICA_TEST_RECOVER_FAST (the recovery bounds passed at once
// instead of waiting ~2 min), and the checks: every certificate a client
// received is stored with the same DER, no serial twice, no order left
// processing, no reservation left requested, no one-time token burnt,
// every revocation in the latest CRL, the audit chain intact. It prints
// the counts and fails on any debris.
func TestChaos(t *testing.T) {
	secs := 30
	if v, err := strconv.Atoi(os.Getenv("MICA_CHAOS_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	t.Run("sqlite-dev", func(t *testing.T) {
		c := newSoftCA(t)
		dns := acmetest.NewDNS(t)
		runChaos(t, secs, c, dns, 1, func(env []string) (func(), string) {
			d, u := startDevKillable(t, c.dir, env, "--dns-resolver", dns.Addr)
			return func() { _ = d.cmd.Process.Kill(); <-d.done }, u
		}, "sqlite", filepath.Join(c.dir, "mica.db"))
	})
	t.Run("postgres-serve", func(t *testing.T) {
		dsn := inventorytest.PostgresDSN(t)
		c := newSoftCA(t, "--database", dsn)
		dns := acmetest.NewDNS(t)
		cfgPath := filepath.Join(c.dir, "mica.yaml")
		yaml, _ := os.ReadFile(cfgPath)
		yaml = []byte(strings.Replace(string(yaml), "format: text", "format: json", 1))
		yaml = append(yaml, fmt.Sprintf(`
acme:
  validation:
    dns_resolver: %s
  limits:
    accounts_per_ip_per_hour: 1000000
    orders_per_ip_per_hour: 1000000
    orders_per_account_per_hour: 1000000
est:
  default: default
  labels:
    default:
      profile: device
      tokens: true
`, dns.Addr)...)
		if err := os.WriteFile(cfgPath, yaml, 0o640); err != nil {
			t.Fatal(err)
		}
		runChaos(t, secs, c, dns, 2, func(env []string) (func(), string) {
			r := startReplicaEnv(t, c.dir, env)
			return func() { _ = r.cmd.Process.Kill(); <-r.done }, r.https + "acme/default/directory"
		}, "pgx", dsn)
	})
}

// runChaos drives the load and the kills against replicas processes
// started by start (with extra environment; it returns a SIGKILL and the
// ACME directory URL), then checks the store (driver, dsn).
func runChaos(t *testing.T, secs int, c *tca, dns *acmetest.DNS, replicas int, start func(env []string) (kill func(), dir string), driver, dsn string) {
	dirURLs := make([]atomic.Pointer[string], replicas)
	kills := make([]func(), replicas)
	startOne := func(i int, env ...string) {
		k, u := start(env)
		kills[i] = k
		dirURLs[i].Store(&u)
	}
	for i := range replicas {
		startOne(i)
	}
	pick := func() string {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(replicas)))
		return *dirURLs[n.Int64()].Load()
	}
	root := readCerts(t, filepath.Join(c.dir, rootPEM))[0]
	pool := x509.NewCertPool()
	pool.AddCert(root)
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	var (
		mu       sync.Mutex
		received = map[string][]byte{} // serial (hex) → leaf DER the client got
		revoked  = map[string]bool{}   // serials whose revocation the server confirmed
		attempts atomic.Int64
		failures atomic.Int64
	)
	// One-time EST tokens, made before the load (the CLI is slow next
	// to a request); a device retries its token until it gets a
	// certificate or a refusal.
	var tokens []string
	for range 15 {
		tok := c.must("est", "token", "create", "--data", c.dir, "--label", "default", "--ttl", "1h")
		lines := strings.Split(strings.TrimSpace(tok.stdout), "\n")
		tokens = append(tokens, lines[len(lines)-1])
	}
	var estRefused, estReceived atomic.Int64
	ctx, stop := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer stop()
	// Workers announce a finalize about to be sent; the killer aims at
	// one, so kills land mid-issuance, not only between requests.
	finalizing := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, cred := range tokens {
			user, pass, _ := strings.Cut(cred, ":")
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device-" + user}}, key)
			for ctx.Err() == nil {
				attempts.Add(1)
				base := strings.TrimSuffix(pick(), "/acme/default/directory") + "/.well-known/est"
				code, der, err := chaosEnroll(hc, base, user, pass, csr)
				if err == nil && code == http.StatusOK {
					leaf, err := x509.ParseCertificate(der)
					if err != nil {
						t.Errorf("EST client received a certificate that does not parse: %v", err)
						break
					}
					mu.Lock()
					received[leaf.SerialNumber.Text(16)] = der
					mu.Unlock()
					estReceived.Add(1)
					break
				}
				failures.Add(1)
				if err == nil && code == http.StatusUnauthorized {
					estRefused.Add(1) // the token is spent; the debris count says whether wrongly
					break
				}
				time.Sleep(300 * time.Millisecond)
			}
		}
	}()
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				attempts.Add(1)
				name := fmt.Sprintf("c%d-%d.chaos.test", w, n)
				der, cl, err := chaosIssue(ctx, hc, pick(), dns, name, func() {
					select {
					case finalizing <- struct{}{}:
					default:
					}
				})
				if err != nil {
					failures.Add(1)
					time.Sleep(200 * time.Millisecond)
					continue
				}
				leaf, err := x509.ParseCertificate(der)
				if err != nil {
					t.Errorf("client received a certificate that does not parse: %v", err)
					continue
				}
				serial := leaf.SerialNumber.Text(16)
				mu.Lock()
				received[serial] = der
				mu.Unlock()
				if n%3 == 0 { // revoke a third, through ACME, so the CRL worker has work to lose
					rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					if cl.RevokeCert(rctx, nil, der, xacme.CRLReasonSuperseded) == nil {
						mu.Lock()
						revoked[serial] = true
						mu.Unlock()
					}
					cancel()
				}
			}
		}()
	}
	nKills := 0
	for ctx.Err() == nil {
		wait, _ := rand.Int(rand.Reader, big.NewInt(3000))
		select {
		case <-ctx.Done():
		case <-time.After(2*time.Second + time.Duration(wait.Int64())*time.Millisecond):
			select {
			case <-finalizing:
				jitter, _ := rand.Int(rand.Reader, big.NewInt(40))
				time.Sleep(time.Duration(jitter.Int64()) * time.Millisecond)
			case <-time.After(time.Second):
			}
			n, _ := rand.Int(rand.Reader, big.NewInt(int64(replicas)))
			i := int(n.Int64())
			kills[i]() // SIGKILL: no cleanup, like a power cut
			nKills++
			startOne(i)
		}
	}
	wg.Wait()
	for i := range replicas {
		kills[i]()
		nKills++
	}

	// The last start finishes the debris at once (MICA_TEST_RECOVER_FAST)
	// and its revocation worker takes over the durable CRL marks.
	startOne(0, "MICA_TEST_RECOVER_FAST=1")
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	debris := func() (processing, requested, burnt int) {
		return count(`SELECT COUNT(*) FROM acme_orders WHERE status = 'processing'`),
			count(`SELECT COUNT(*) FROM certificates WHERE state = 'requested'`),
			// A token consumed with nothing to show for it: no certificate
			// (but failed ones) and no held request carries its requester.
			count(`SELECT COUNT(*) FROM est_tokens t WHERE t.used_at IS NOT NULL
				AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.requester LIKE '%est-token:' || t.id AND c.state <> 'failed')
				AND NOT EXISTS (SELECT 1 FROM est_pending p WHERE p.requester LIKE '%est-token:' || t.id)`)
	}
	missingFromCRL := func() int {
		crls := map[string]map[string]bool{}
		rows, err := db.Query(`SELECT issuer_id, der FROM crls WHERE shard = 0 AND delta = 0`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			var der []byte
			if err := rows.Scan(&id, &der); err != nil {
				t.Fatal(err)
			}
			rl, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatal(err)
			}
			crls[id] = map[string]bool{}
			for _, e := range rl.RevokedCertificateEntries {
				crls[id][e.SerialNumber.Text(16)] = true
			}
		}
		rows.Close()
		rows, err = db.Query(`SELECT issuer_id, serial FROM certificates WHERE state = 'revoked'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		missing := 0
		for rows.Next() {
			var id, serial string
			if err := rows.Scan(&id, &serial); err != nil {
				t.Fatal(err)
			}
			if !crls[id][serial] {
				missing++
			}
		}
		return missing
	}
	// Polling deadline: how long the harness waits for recovery and the
	// CRL batch to run; the assertions follow it.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		p, r, b := debris()
		if p == 0 && r == 0 && b == 0 && missingFromCRL() == 0 {
			break
		}
	}
	processing, requested, burnt := debris()
	missingCRL := missingFromCRL()
	dupSerials := count(`SELECT COUNT(*) FROM (SELECT issuer_id, serial FROM certificates GROUP BY issuer_id, serial HAVING COUNT(*) > 1) AS dup`)
	lost, differ := 0, 0
	mu.Lock()
	for serial, der := range received {
		var stored []byte
		q := `SELECT der FROM certificates WHERE serial = ?`
		if driver == "pgx" {
			q = strings.Replace(q, "?", "$1", 1)
		}
		err := db.QueryRow(q, serial).Scan(&stored)
		switch {
		case err != nil:
			lost++
		case string(stored) != string(der):
			differ++
		}
	}
	nRecv, nRev := len(received), len(revoked)
	mu.Unlock()
	kills[0]()
	audit := c.run(c.data("audit", "verify")...)

	t.Logf("chaos: %ds, %d kills, %d issuance attempts (%d failed), %d certificates received (%d by EST of %d tokens, %d tokens refused as spent), %d revoked",
		secs, nKills, attempts.Load(), failures.Load(), nRecv, estReceived.Load(), len(tokens), estRefused.Load(), nRev)
	t.Logf("chaos debris: lost=%d der_mismatch=%d duplicate_serials=%d processing_orders=%d requested_rows=%d burnt_tokens=%d revocations_missing_from_crl=%d audit_verify_exit=%d",
		lost, differ, dupSerials, processing, requested, burnt, missingCRL, audit.code)
	if lost+differ+dupSerials+processing+requested+burnt+missingCRL != 0 || audit.code != 0 {
		t.Errorf("debris after %d kills (see the counts above); audit verify:\n%v", nKills, audit)
	}
	if nRecv == 0 || nKills < 3 {
		t.Errorf("the harness proved nothing: %d certificates, %d kills", nRecv, nKills)
	}
	chaosBackupDrill(t, c, driver, count(`SELECT COUNT(*) FROM certificates`))
}

// chaosBackupDrill ends a chaos run the way an operator would after an
// incident: back up the store the kills left, verify the backup (the drill
// restores it into scratch space), restore it into a fresh directory (and,
// on PostgreSQL, a fresh database), and check the restored store holds
// every certificate, verifies its audit chain and still issues.
func chaosBackupDrill(t *testing.T, c *tca, driver string, certs int) {
	t.Helper()
	tmp := t.TempDir()
	pass := writeSecret(t, tmp, "bp", "correct horse battery staple")
	b := filepath.Join(tmp, "chaos.age")
	created := c.run(c.data("backup", "create", "--out", b, "--passphrase-file", pass)...)
	verified := c.run("backup", "verify", b, "--passphrase-file", pass)
	restored := &tca{t: t, dir: filepath.Join(tmp, "restored"), secrets: c.secrets}
	args := []string{"restore", b, "--data", restored.dir, "--passphrase-file", pass}
	target := filepath.Join(restored.dir, "mica.db")
	if driver == "pgx" {
		fresh, _ := scratchDatabase(t, "mica_chaos_restore_")
		args = append(args, "--database", fresh)
		target = fresh
	}
	restore := restored.run(args...)
	restoredCerts, restoredAudit := -1, -1
	if restore.code == 0 {
		if driver == "pgx" {
			target = restoredDSN(t, restored.dir, target)
		}
		if db, err := sql.Open(driver, target); err == nil {
			if err := db.QueryRow(`SELECT COUNT(*) FROM certificates`).Scan(&restoredCerts); err != nil {
				t.Errorf("counting the restored certificates: %v", err)
			}
			db.Close()
		}
		restoredAudit = restored.run(restored.data("audit", "verify")...).code
	}
	t.Logf("chaos backup: create_exit=%d verify_exit=%d restore_exit=%d certificates=%d restored=%d restored_audit_verify_exit=%d",
		created.code, verified.code, restore.code, certs, restoredCerts, restoredAudit)
	switch {
	case created.code != 0:
		t.Errorf("backup create after the chaos run:\n%v", created)
	case verified.code != 0:
		t.Errorf("backup verify after the chaos run:\n%v", verified)
	case restore.code != 0:
		t.Errorf("restore after the chaos run:\n%v", restore)
	case restoredCerts != certs || restoredAudit != 0:
		t.Errorf("restored store: %d certificates (want %d), audit verify exit %d", restoredCerts, certs, restoredAudit)
	default:
		restored.must(restored.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "after-chaos.test"}), "--profile", "server")...)
	}
}

// chaosIssue runs one ACME issuance (new account, dns-01) against dir and
// returns the leaf DER and the client (for a revocation).
func chaosIssue(ctx context.Context, hc *http.Client, dir string, dns *acmetest.DNS, name string, finalizing func()) ([]byte, *xacme.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &xacme.Client{Key: key, DirectoryURL: dir, HTTPClient: hc}
	if _, err := cl.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		return nil, nil, err
	}
	o, err := cl.AuthorizeOrder(ctx, xacme.DomainIDs(name))
	if err != nil {
		return nil, nil, err
	}
	for _, u := range o.AuthzURLs {
		z, err := cl.GetAuthorization(ctx, u)
		if err != nil {
			return nil, nil, err
		}
		for _, ch := range z.Challenges {
			if ch.Type != "dns-01" {
				continue
			}
			v, _ := cl.DNS01ChallengeRecord(ch.Token)
			dns.SetTXT("_acme-challenge."+name, v)
			if _, err := cl.Accept(ctx, ch); err != nil {
				return nil, nil, err
			}
		}
		if _, err := cl.WaitAuthorization(ctx, u); err != nil {
			return nil, nil, err
		}
	}
	ck, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, ck)
	finalizing()
	ders, _, err := cl.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		return nil, nil, err
	}
	return ders[0], cl, nil
}

// chaosEnroll posts one EST simpleenroll with a one-time token and
// returns the status and, on 200, the issued certificate's DER.
func chaosEnroll(hc *http.Client, base, user, pass string, csr []byte) (int, []byte, error) {
	req, _ := http.NewRequest(http.MethodPost, base+"/simpleenroll", bytes.NewReader([]byte(base64.StdEncoding.EncodeToString(csr))))
	req.Header.Set("Content-Type", "application/pkcs10")
	req.SetBasicAuth(user, pass)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, err
	}
	p7, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(body)))
	if err != nil {
		return 0, nil, err
	}
	der, err := certsOnlyLeaf(p7)
	return resp.StatusCode, der, err
}

// certsOnlyLeaf returns the first certificate of a certs-only PKCS#7
// (RFC 8951 section 3.2.3): ContentInfo → [0] SignedData → [0] certificates.
func certsOnlyLeaf(p7 []byte) ([]byte, error) {
	var ci struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(p7, &ci); err != nil {
		return nil, err
	}
	var sd struct {
		Version int
		Digests asn1.RawValue
		Encap   asn1.RawValue
		Certs   asn1.RawValue `asn1:"optional,tag:0"`
		Signers asn1.RawValue
	}
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, err
	}
	var first asn1.RawValue
	if _, err := asn1.Unmarshal(sd.Certs.Bytes, &first); err != nil {
		return nil, err
	}
	return first.FullBytes, nil
}

// startReplicaEnv is startReplica with extra environment (the recovery
// switch); a replica SIGKILLed by the harness needs no cleanup.
func startReplicaEnv(t *testing.T, dir string, env []string) *servedReplica {
	t.Helper()
	cmd := exec.Command(micaBin, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	cmd.Env = append(baseEnv(), env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &servedReplica{cmd: cmd, logs: &lockedBuffer{}, done: make(chan error, 1)}
	serving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			r.logs.Write([]byte(line + "\n"))
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "serving" {
				u, _ := rec["https"].(string)
				serving <- u
			}
		}
		r.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-r.done
		}
	})
	select {
	case r.https = <-serving:
	case <-time.After(60 * time.Second):
		t.Fatalf("mica serve did not log \"serving\" within 60s:\n%s", r.logs)
	}
	return r
}

// restoredDSN is the database the restored mica.yaml names (restore may
// add the backed-up schema as search_path to the DSN it was given).
func restoredDSN(t *testing.T, dir, fallback string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "mica.yaml"))
	if err != nil {
		return fallback
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "database:"); ok {
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	return fallback
}
