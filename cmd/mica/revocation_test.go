package main

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"
)

// TestRevocationWithOpenSSL drives a running `mica dev` with the relying
// party tools of INTEROP.md: openssl ocsp (with and without nonce), the
// CRL fetched over HTTP and parsed by openssl crl, openssl verify
// -crl_check, conditional GETs, malformed requests, and an incident run
// that blocks a key from further issuance.
func TestRevocationWithOpenSSL(t *testing.T) {
	requireTool(t, "openssl")
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, dir)
	base := reHTTP.FindString(d.stdout)
	if base == "" {
		t.Fatalf("no plain-HTTP URL in the banner:\n%s", d.stdout)
	}
	c := &tca{t: t, dir: dir}
	root, issuing := filepath.Join(dir, rootPEM), filepath.Join(dir, issuingPEM)
	work := t.TempDir()
	issue := func(name string) (leaf, csr string) {
		csr = makeCSR(t, csrOpts{cn: name + ".test"})
		leaf = filepath.Join(work, name+".pem")
		c.must(c.data("cert", "issue", "--csr", csr, "--profile", "server", "--out", leaf)...)
		return leaf, csr
	}
	ocspCheck := func(leaf, nonce string, wants ...string) string {
		t.Helper()
		out := openssl(t, "ocsp", "-issuer", issuing, "-cert", leaf, "-url", base+"/ocsp", "-CAfile", root, nonce, "-resp_text")
		for _, w := range append(wants, "Response verify OK") {
			if !strings.Contains(out, w) {
				t.Errorf("openssl ocsp %s: output lacks %q:\n%s", nonce, w, out)
			}
		}
		if strings.Contains(out, "WARNING") {
			t.Errorf("openssl ocsp %s warns:\n%s", nonce, out)
		}
		return out
	}
	bad, _ := issue("bad")
	good, _ := issue("good")
	out := ocspCheck(bad, "-nonce", bad+": good")
	if !strings.Contains(out, "OCSP Nonce") {
		t.Errorf("nonce not echoed in the response:\n%s", out)
	}
	ocspCheck(bad, "-no_nonce", bad+": good")

	serial := opensslSerial(t, bad)
	c.must(c.data("cert", "revoke", serial, "--reason", "keyCompromise")...)
	ocspCheck(bad, "-nonce", bad+": revoked", "Reason: keyCompromise")
	ocspCheck(bad, "-no_nonce", bad+": revoked", "Reason: keyCompromise")
	ocspCheck(good, "-no_nonce", good+": good")

	// The CRL, as a relying party fetches it.
	issuer := c.list()[0].IssuerID
	resp := get(t, base+"/crl/"+issuer+".crl", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-crl" || resp.Header.Get("ETag") == "" ||
		resp.Header.Get("Last-Modified") == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
		t.Fatalf("GET CRL: %d %v", resp.StatusCode, resp.Header)
	}
	der := readBody(t, resp)
	crlDER := filepath.Join(work, "crl.der")
	os.WriteFile(crlDER, der, 0o600)
	text := openssl(t, "crl", "-inform", "DER", "-in", crlDER, "-text", "-noout")
	for _, w := range []string{strings.ToUpper(serial), "Key Compromise", "X509v3 CRL Number", "Invalidity Date"} {
		if !strings.Contains(strings.ToUpper(text), strings.ToUpper(w)) {
			t.Errorf("openssl crl -text lacks %q:\n%s", w, text)
		}
	}
	crlPEM := filepath.Join(work, "crl.pem")
	openssl(t, "crl", "-inform", "DER", "-in", crlDER, "-out", crlPEM)
	verify := func(leaf string) (string, error) {
		cmd := execOpenSSL("verify", "-crl_check", "-CAfile", root, "-untrusted", issuing, "-CRLfile", crlPEM, leaf)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if out, err := verify(bad); err == nil || !strings.Contains(out, "revoked") {
		t.Errorf("openssl verify -crl_check accepted the revoked certificate: %v\n%s", err, out)
	}
	if out, err := verify(good); err != nil {
		t.Errorf("openssl verify -crl_check rejected a good certificate: %v\n%s", err, out)
	}
	if r := get(t, base+"/crl/"+issuer+".crl", map[string]string{"If-None-Match": resp.Header.Get("ETag")}); r.StatusCode != http.StatusNotModified {
		t.Errorf("CRL with If-None-Match: %d, want 304", r.StatusCode)
	}
	if r := get(t, base+"/crl/nope.crl", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown CRL: %d, want 404", r.StatusCode)
	}

	// OCSP over GET: pre-signed, cacheable, conditional; tolerant of
	// url-safe unpadded base64; malformed input gets malformedRequest.
	leaf, iss := readCerts(t, good)[0], readCerts(t, issuing)[0]
	req, _ := ocsp.CreateRequest(leaf, iss, &ocsp.RequestOptions{Hash: crypto.SHA1})
	for _, enc := range []string{base64.StdEncoding.EncodeToString(req), base64.RawURLEncoding.EncodeToString(req)} {
		r := get(t, base+"/ocsp/"+enc, nil)
		body := readBody(t, r)
		if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/ocsp-response" || r.Header.Get("ETag") == "" {
			t.Fatalf("GET /ocsp/%s: %d %v", enc, r.StatusCode, r.Header)
		}
		if o, err := ocsp.ParseResponseForCert(body, leaf, iss); err != nil || o.Status != ocsp.Good {
			t.Errorf("GET OCSP: %v %v", o, err)
		}
		if r2 := get(t, base+"/ocsp/"+enc, map[string]string{"If-None-Match": r.Header.Get("ETag")}); r2.StatusCode != http.StatusNotModified {
			t.Errorf("OCSP GET with If-None-Match: %d, want 304", r2.StatusCode)
		}
	}
	for _, path := range []string{"/ocsp/!!!", "/ocsp/AAAA", "/ocsp//"} {
		if body := readBody(t, get(t, base+path, nil)); string(body) != "\x30\x03\x0a\x01\x01" {
			t.Errorf("GET %s = %x, want malformedRequest", path, body)
		}
	}
	pr, err := http.Post(base+"/ocsp", "application/ocsp-request", bytes.NewReader([]byte("garbage")))
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, pr); string(body) != "\x30\x03\x0a\x01\x01" || pr.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("POST garbage = %x %v, want malformedRequest, no-store", body, pr.Header)
	}

	// Incident: a dry run changes nothing; --confirm revokes every
	// certificate of the key and blocks it from any further issuance.
	victim, victimCSR := issue("victim")
	r := c.must(c.data("incident", "revoke", "--pubkey-file", victim, "--reason", "keyCompromise")...)
	if !strings.Contains(r.stdout, "1 certificate(s) match") || !strings.Contains(r.stdout, "dry run") {
		t.Errorf("dry run output:\n%s", r.stdout)
	}
	ocspCheck(victim, "-no_nonce", victim+": good")
	r = c.must(c.data("incident", "revoke", "--pubkey-file", victim, "--reason", "keyCompromise", "--confirm")...)
	if !strings.Contains(r.stdout, "revoked 1 certificate(s), blocked 1 public key(s)") {
		t.Errorf("incident output:\n%s", r.stdout)
	}
	ocspCheck(victim, "-nonce", victim+": revoked", "Reason: keyCompromise")
	r = c.run(c.data("cert", "issue", "--csr", victimCSR, "--profile", "server")...)
	wantExit(t, r, exitRefused, "public key is blocked (compromised)")
}

func get(t *testing.T, url string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readBody(t *testing.T, r *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// execOpenSSL is openssl for commands whose failure is the expected result.
func execOpenSSL(args ...string) *exec.Cmd { return exec.Command("openssl", args...) }
