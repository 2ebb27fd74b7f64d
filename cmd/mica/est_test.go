package main

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"mime"
	"mime/multipart"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestESTDev drives `mica dev`'s default EST label with curl and openssl,
// the way a device shell script would: cacerts, csrattrs, simpleenroll
// with a token from `mica est token create` (one-line base64, no
// Content-Transfer-Encoding), token reuse refused, simplereenroll with the
// device's certificate (each certificate checked to be for the device's
// key), serverkeygen (a certificate for the server-made key it returns);
// then the held-enrollment commands on a label that holds nothing: the
// list names none of these devices and approving an unknown ID is "not
// found". (Holding and approving is enroll's testApproval.)
func TestESTDev(t *testing.T) {
	t.Parallel()
	requireTool(t, "curl")
	requireTool(t, "openssl")
	dir := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, dir)
	base := reHTTPS.FindString(d.stdout) + "/.well-known/est"
	if !strings.Contains(d.stdout, base+"/") {
		t.Errorf("banner lacks the EST URL %s/:\n%s", base, d.stdout)
	}
	c := &tca{t: t, dir: dir}
	tok := c.must("est", "token", "create", "--data", dir, "--label", "default", "--ttl", "1h")
	lines := strings.Split(strings.TrimSpace(tok.stdout), "\n")
	cred := lines[len(lines)-1]
	if !strings.Contains(cred, ":") {
		t.Fatalf("last line of est token create is %q, want USER:PASSWORD", cred)
	}
	work := t.TempDir()
	shell := func(script string) string {
		t.Helper()
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Dir = work
		cmd.Env = append(baseEnv(), "ROOT="+filepath.Join(dir, rootPEM), "BASE="+base, "CRED="+cred)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s%s", script, err, out.String(), errb.String())
		}
		return out.String()
	}
	if out := shell(`curl -sS --fail --cacert "$ROOT" "$BASE/cacerts" | base64 -d | openssl pkcs7 -inform DER -print_certs`); strings.Count(out, "BEGIN CERTIFICATE") != 2 {
		t.Errorf("cacerts:\n%s", out)
	}
	if out := shell(`curl -sS --fail --cacert "$ROOT" "$BASE/csrattrs" | base64 -d | openssl asn1parse -inform DER`); !strings.Contains(out, "prime256v1") {
		t.Errorf("csrattrs:\n%s", out)
	}
	shell(`openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dev.key -subj /CN=dev1 -outform DER 2>/dev/null | base64 -w0 > req.b64
curl -sS --fail --cacert "$ROOT" -u "$CRED" -H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$BASE/simpleenroll" | base64 -d | openssl pkcs7 -inform DER -print_certs > dev.pem`)
	// The certificate is for the device's key and name.
	samePublicKey(t, shell, "dev.pem", "dev.key")
	if subj := shell(`openssl x509 -in dev.pem -noout -subject -nameopt RFC2253`); !strings.Contains(subj, "CN=dev1") {
		t.Errorf("enrolled certificate subject %s, want CN=dev1", subj)
	}
	if code := shell(`curl -sS -o /dev/null -w '%{http_code}' --cacert "$ROOT" -u "$CRED" -H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$BASE/simpleenroll"`); code != "401" {
		t.Errorf("token reuse answered %s, want 401", code)
	}
	shell(`openssl req -new -key dev.key -subj /CN=dev1 -outform DER | base64 -w0 > re.b64
curl -sS --fail --cacert "$ROOT" --cert dev.pem --key dev.key -H 'Content-Type: application/pkcs10' --data-binary @re.b64 "$BASE/simplereenroll" | base64 -d | openssl pkcs7 -inform DER -print_certs > dev2.pem`)
	old, renewed := shell(`openssl x509 -in dev.pem -noout -serial`), shell(`openssl x509 -in dev2.pem -noout -serial`)
	if old == renewed {
		t.Errorf("re-enrollment returned the same certificate")
	}
	samePublicKey(t, shell, "dev2.pem", "dev.key")
	// The inventory links the renewal to its predecessor.
	oldSerial := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(old), "serial="))
	show := c.must("cert", "show", oldSerial, "--data", dir)
	if !strings.Contains(show.stdout, "superseded") {
		t.Errorf("old certificate after re-enrollment:\n%s", show.stdout)
	}

	tok2 := c.must("est", "token", "create", "--data", dir, "--names", "dev3.test")
	l2 := strings.Split(strings.TrimSpace(tok2.stdout), "\n")
	shell(`openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout t.key -subj /CN=dev3.test -addext subjectAltName=DNS:dev3.test -outform DER 2>/dev/null | base64 -w0 > skg.b64
curl -sS --fail --cacert "$ROOT" -u '` + l2[len(l2)-1] + `' -H 'Content-Type: application/pkcs10' -D skg.hdr -o skg.body --data-binary @skg.b64 "$BASE/serverkeygen"`)
	// serverkeygen: a multipart answer with the server-made key (PKCS#8)
	// and a certificate for that key, not for the key in the CSR.
	splitServerKeygen(t, work, "skg")
	samePublicKey(t, shell, "skg.crt.pem", "skg.key.pem")
	if out := shell(`openssl x509 -in skg.crt.pem -noout -ext subjectAltName`); !strings.Contains(out, "DNS:dev3.test") {
		t.Errorf("serverkeygen certificate names: %s", out)
	}
	if a, b := shell(`openssl x509 -in skg.crt.pem -noout -pubkey`), shell(`openssl pkey -in t.key -pubout`); a == b {
		t.Error("serverkeygen certified the CSR's key, not a server-generated one")
	}

	if out := c.must("est", "pending", "--data", dir).stdout; strings.Contains(out, "dev1") || strings.Contains(out, "dev3.test") {
		t.Errorf("est pending lists enrollments that were not held:\n%s", out)
	}
	wantExit(t, c.run("est", "approve", "nosuch", "--data", dir), exitNotFound, "no held EST enrollment")
	if err := d.stop(t); err != nil {
		t.Errorf("mica dev exit: %v", err)
	}
}

// samePublicKey requires the certificate and the private key (PEM files
// in the shell's work directory) to hold the same public key.
func samePublicKey(t *testing.T, shell func(string) string, certPEM, keyPEM string) {
	t.Helper()
	a := shell(`openssl x509 -in ` + certPEM + ` -noout -pubkey`)
	b := shell(`openssl pkey -in ` + keyPEM + ` -pubout`)
	if a == "" || a != b {
		t.Errorf("%s is not for the key in %s:\n%s\n%s", certPEM, keyPEM, a, b)
	}
}

// splitServerKeygen reads the serverkeygen answer saved as NAME.hdr and
// NAME.body in dir and writes its parts as NAME.key.pem (the PKCS#8 key)
// and NAME.crt.pem (the certificate out of the PKCS#7 part).
func splitServerKeygen(t *testing.T, dir, name string) {
	t.Helper()
	hdr, err := os.ReadFile(filepath.Join(dir, name+".hdr"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(dir, name+".body"))
	if err != nil {
		t.Fatal(err)
	}
	var boundary string
	for _, ln := range strings.Split(string(hdr), "\n") {
		if k, v, ok := strings.Cut(ln, ":"); ok && strings.EqualFold(k, "Content-Type") {
			if mt, params, err := mime.ParseMediaType(strings.TrimSpace(v)); err == nil && strings.HasPrefix(mt, "multipart/") {
				boundary = params["boundary"]
			}
		}
	}
	if boundary == "" {
		t.Fatalf("serverkeygen answer is not multipart:\n%s", hdr)
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var key, p7 []byte
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(part)
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(b)), ""))
		if err != nil {
			t.Fatalf("serverkeygen part %s is not base64: %v", part.Header.Get("Content-Type"), err)
		}
		switch ct := part.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "application/pkcs8"):
			key = der
		case strings.HasPrefix(ct, "application/pkcs7-mime"):
			p7 = der
		}
	}
	k, err := x509.ParsePKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("serverkeygen key part: %v", err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	if err := os.WriteFile(filepath.Join(dir, name+".key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".p7"), p7, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("openssl", "pkcs7", "-inform", "DER", "-in", name+".p7", "-print_certs", "-out", name+".crt.pem")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("serverkeygen certificate part: %v\n%s", err, out)
	}
}
