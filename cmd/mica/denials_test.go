package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/denials"
)

// TestDenialFloodIsSummarised drives a real `mica serve` over HTTPS with
// 10,000 bad bearer tokens, 10,000 bad EST credentials (and 1,000
// malformed EST bodies) and 10,000 JWSs
// that do not verify. The audit log gains a bounded number of events —
// one summary per protocol, source and minute — whose counts are exact,
// the auth-failure alert count sees all 30,000, and EST issuance still
// works afterwards. Before the summariser every bad token and every bad
// EST credential was one audit event (20,000 events).
func TestDenialFloodIsSummarised(t *testing.T) {
	t.Parallel()
	const n = 10000
	c := newSoftCA(t)
	cfgPath := filepath.Join(c.dir, "mica.yaml")
	yaml, _ := os.ReadFile(cfgPath)
	yaml = []byte(strings.Replace(string(yaml), "format: text", "format: json", 1) +
		"\nest:\n  default: default\n  rate_limit: 1000000\n  labels:\n    default:\n      profile: device\n      tokens: true\n")
	if err := os.WriteFile(cfgPath, yaml, 0o640); err != nil {
		t.Fatal(err)
	}
	tok := c.must(c.data("est", "token", "create", "--label", "default", "--ttl", "1h")...)
	lines := strings.Split(strings.TrimSpace(tok.stdout), "\n")
	user, pass, _ := strings.Cut(lines[len(lines)-1], ":")

	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(c.dir, "mica.db")
	lastID := func() int64 {
		st, err := inventory.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		evs, err := st.Events(ctx, inventory.EventFilter{Limit: 1})
		if err != nil || len(evs) != 1 {
			t.Fatalf("newest event: %v, %v", evs, err)
		}
		return evs[0].ID
	}
	before := lastID()
	started := time.Now()

	r := startReplica(t, c.dir)
	pool := x509.NewCertPool()
	pool.AddCert(readCerts(t, filepath.Join(c.dir, rootPEM))[0])
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 16}}
	do := func(method, url, ctype string, body []byte, hdr map[string]string) (int, string) {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, url, err)
			return 0, ""
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	var floodN func(name string, n, want int, send func() (int, string))
	flood := func(name string, want int, send func() (int, string)) { floodN(name, n, want, send) }
	floodN = func(name string, n, want int, send func() (int, string)) {
		var wg sync.WaitGroup
		var once sync.Once
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 16 {
					if code, body := send(); code != want {
						once.Do(func() { t.Errorf("%s: status %d %q, want %d", name, code, body, want) })
					}
				}
			}()
		}
		wg.Wait()
	}

	// A JWS with a well-formed jwk and url whose signature is garbage.
	var dir map[string]any
	if code, body := do("GET", r.https+"acme/default/directory", "", nil, nil); code != 200 || json.Unmarshal([]byte(body), &dir) != nil {
		t.Fatalf("directory = %d %s", code, body)
	}
	newAccount, _ := dir["newAccount"].(string)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: key.Public()})
	protected := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"alg":"ES256","jwk":%s,"nonce":"bogus","url":%q}`, jwk, newAccount)))
	badJWS := []byte(fmt.Sprintf(`{"protected":%q,"payload":"e30","signature":%q}`, protected, base64.RawURLEncoding.EncodeToString(make([]byte, 64))))

	t0 := time.Now()
	flood("bad bearer", http.StatusUnauthorized, func() (int, string) {
		return do("GET", r.https+"api/v1/certificates", "", nil, map[string]string{"Authorization": "Bearer not-a-token"})
	})
	floodKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	floodCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "flood.test"}, DNSNames: []string{"flood.test"}}, floodKey)
	flood("bad EST credentials", http.StatusUnauthorized, func() (int, string) {
		return do("POST", r.https+".well-known/est/simpleenroll", "application/pkcs10", []byte(base64.StdEncoding.EncodeToString(floodCSR)),
			map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":wrong-"+pass))})
	})
	// A malformed body is refused before any credential is looked at, so
	// it is an unauthenticated refusal too: summarised, not one event each.
	malformed := n / 10
	floodN("malformed EST bodies", malformed, http.StatusBadRequest, func() (int, string) {
		return do("POST", r.https+".well-known/est/simpleenroll", "application/pkcs10", []byte("MIIB"),
			map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":wrong-"+pass))})
	})
	flood("bad JWS", http.StatusBadRequest, func() (int, string) {
		return do("POST", newAccount, "application/jose+json", badJWS, nil)
	})
	t.Logf("30,000 refused requests in %s", time.Since(t0).Round(time.Millisecond))

	// Issuance still works, with the token the flood guessed at.
	csrKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "after-flood.test"}, DNSNames: []string{"after-flood.test"}}, csrKey)
	t1 := time.Now()
	if code, body := do("POST", r.https+".well-known/est/simpleenroll", "application/pkcs10", []byte(base64.StdEncoding.EncodeToString(csr)),
		map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}); code != 200 {
		t.Fatalf("EST enrollment after the flood = %d %s, want 200", code, body)
	}
	t.Logf("EST enrollment after the flood took %s", time.Since(t1).Round(time.Millisecond))

	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("mica serve after SIGINT: %v\n%s", err, r.logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("mica serve did not stop:\n%s", r.logs)
	}
	minutes := int(time.Since(started)/time.Minute) + 2 // windows the run touched
	added := lastID() - before
	// Three protocols' summaries per window, plus the few events of
	// starting (server certificate) and of the one enrollment.
	if bound := int64(3*minutes + 20); added > bound {
		t.Errorf("the flood added %d audit events, want at most %d", added, bound)
	}

	st, err := inventory.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sums, err := st.Events(ctx, inventory.EventFilter{Action: inventory.ActionDeniedSummary, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) == 0 || len(sums) > 3*minutes {
		t.Fatalf("%d summary events, want 1..%d", len(sums), 3*minutes)
	}
	total := map[string]int64{}
	kinds := map[string]int64{}
	for _, e := range sums {
		var d denials.Details
		if err := json.Unmarshal(e.Details, &d); err != nil {
			t.Fatalf("summary details %s: %v", e.Details, err)
		}
		if e.Source != "127.0.0.1" || e.Outcome != "denied" || d.WindowSeconds != 60 || d.FirstSeen.After(d.LastSeen) {
			t.Errorf("summary %+v (%+v)", e, d)
		}
		if strings.Contains(string(e.Details), pass) || strings.Contains(string(e.Details), "not-a-token") {
			t.Errorf("summary carries a credential: %s", e.Details)
		}
		total[e.Protocol] += d.Count
		for k, v := range d.Kinds {
			kinds[k] += v
		}
	}
	if total["api"] != n || total["est"] != int64(n+malformed) || total["acme"] != n {
		t.Errorf("summarised counts per protocol = %v, want %d each (est %d)", total, n, n+malformed)
	}
	if kinds["api.bearer"] != n || kinds["acme.jws.malformed"] != n || kinds["est.simpleenroll.unauthorized"] != n ||
		kinds["est.simpleenroll.malformed"] != int64(malformed) {
		t.Errorf("summarised kinds = %v", kinds)
	}
	// The auth-failure alert reads the summaries' counts.
	counts, err := st.DeniedBySource(ctx, started.Add(-time.Minute))
	if err != nil || len(counts) == 0 || counts[0].Source != "127.0.0.1" || counts[0].Count < 3*n {
		t.Errorf("DeniedBySource = %+v, %v; want 127.0.0.1 with at least %d", counts, err, 3*n)
	}
}
