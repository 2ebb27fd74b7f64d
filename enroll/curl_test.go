package enroll_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mica-pki/mica/internal/testtool"
)

// sh runs a shell pipeline in dir and returns its stdout.
func sh(t *testing.T, dir, script string) string {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", script, err, out.String(), errb.String())
	}
	return out.String()
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		testtool.Need(t, tool)
	}
}

// TestCurlOpenSSL drives the server with curl and openssl the way a shell
// script on a device would: the lenient path (one-line base64, no
// Content-Transfer-Encoding), then re-enrollment with the device's cert.
func testCurlOpenSSL(t *testing.T, b *base) {
	needTools(t, "curl", "openssl", "base64")
	e := newEnv(t, b, nil)
	user, pass := e.token("default")
	base := e.url("")
	d := e.dir

	t.Run("cacerts", func(t *testing.T) {
		out := sh(t, d, `curl -sS --fail --cacert root.pem `+base+`/cacerts | base64 -d | openssl pkcs7 -inform DER -print_certs`)
		if n := strings.Count(out, "BEGIN CERTIFICATE"); n != 2 {
			t.Fatalf("cacerts returned %d certificates, want 2 (issuing + root):\n%s", n, out)
		}
	})
	t.Run("csrattrs", func(t *testing.T) {
		out := sh(t, d, `curl -sS --fail --cacert root.pem `+base+`/csrattrs | base64 -d | openssl asn1parse -inform DER`)
		if !strings.Contains(out, "prime256v1") || !strings.Contains(out, "ecdsa-with-SHA256") {
			t.Fatalf("csrattrs lacks the key type:\n%s", out)
		}
		if !strings.Contains(out, ":1.2.840.113549.1.9.16.2.61") || !strings.Contains(out, "cont [ 0 ]") {
			t.Fatalf("csrattrs lacks the RFC 9908 CertificationRequestInfoTemplate:\n%s", out)
		}
	})
	t.Run("simpleenroll+reenroll", func(t *testing.T) {
		sh(t, d, `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dev.key -subj /CN=dev1 -outform DER 2>/dev/null | base64 -w0 > req.b64
curl -sS --fail --cacert root.pem -u `+user+`:`+pass+` -H 'Content-Type: application/pkcs10' --data-binary @req.b64 `+base+`/simpleenroll | base64 -d | openssl pkcs7 -inform DER -print_certs > dev.pem`)
		out := sh(t, d, `openssl x509 -in dev.pem -noout -subject -serial`)
		if !strings.Contains(out, "CN = dev1") {
			t.Fatalf("enrolled certificate: %s", out)
		}
		// Same token again: refused.
		code := sh(t, d, `curl -sS -o /dev/null -w '%{http_code}' --cacert root.pem -u `+user+`:`+pass+` -H 'Content-Type: application/pkcs10' --data-binary @req.b64 `+base+`/simpleenroll`)
		if code != "401" {
			t.Fatalf("token reuse answered %s, want 401", code)
		}
		// Re-enroll with the device certificate; OpenSSL writes the CN as
		// UTF8String, Go wrote PrintableString: equal by meaning.
		sh(t, d, `openssl req -new -key dev.key -subj /CN=dev1 -outform PEM > re.csr
curl -sS --fail --cacert root.pem --cert dev.pem --key dev.key -H 'Content-Type: application/pkcs10' --data-binary @re.csr `+base+`/simplereenroll | base64 -d | openssl pkcs7 -inform DER -print_certs > dev2.pem`)
		out2 := sh(t, d, `openssl x509 -in dev2.pem -noout -subject -serial`)
		if out2 == out || !strings.Contains(out2, "CN = dev1") {
			t.Fatalf("re-enrolled certificate %q (old %q)", out2, out)
		}
		// The old certificate is superseded now: it cannot re-enroll again.
		code = sh(t, d, `curl -sS -o /dev/null -w '%{http_code}' --cacert root.pem --cert dev.pem --key dev.key -H 'Content-Type: application/pkcs10' --data-binary @re.csr `+base+`/simplereenroll`)
		if code != "401" {
			t.Fatalf("re-enroll with superseded cert answered %s, want 401", code)
		}
	})
	t.Run("serverkeygen", func(t *testing.T) {
		u2, p2 := e.token("default")
		sh(t, d, `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tmp.key -subj /CN=dev2 -outform DER 2>/dev/null | base64 -w0 > skg.b64
curl -sS --fail --cacert root.pem -u `+u2+`:`+p2+` -H 'Content-Type: application/pkcs10' -D skg.hdr --data-binary @skg.b64 `+base+`/serverkeygen > skg.out`)
		hdr := sh(t, d, `cat skg.hdr`)
		i := strings.Index(hdr, "boundary=")
		if i < 0 {
			t.Fatalf("no multipart boundary in %s", hdr)
		}
		boundary := strings.TrimSpace(strings.SplitN(hdr[i+len("boundary="):], "\n", 2)[0])
		out := sh(t, d, `awk -v b="--`+boundary+`" 'BEGIN{n=0} index($0,b)==1{n++; body=0; next} /^\r?$/{body=1; next} body{print > ("part" n ".b64")}' skg.out
tr -d '\r' < part1.b64 | base64 -d | openssl pkey -inform DER -pubout > key.pub
tr -d '\r' < part2.b64 | base64 -d | openssl pkcs7 -inform DER -print_certs > skg.pem
openssl x509 -in skg.pem -noout -pubkey > cert.pub
cmp key.pub cert.pub && openssl x509 -in skg.pem -noout -subject`)
		if !strings.Contains(out, "CN = dev2") {
			t.Fatalf("serverkeygen certificate: %s", out)
		}
	})
	_ = filepath.Join
}
