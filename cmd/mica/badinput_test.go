package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// narrowProfiles replaces the built-in profiles with a permissive server
// profile and a narrow one, to test refusals by policy.
const narrowProfiles = `
profiles:
  server:
    dns: ["*"]
    ip_ranges: ["*"]
    max_lifetime: 397d
    default_lifetime: 90d
    ext_key_usage: [serverAuth]
  web:
    description: only names under example.test, at most 30 days
    dns: ["*.example.test"]
    max_lifetime: 30d
    default_lifetime: 7d
    ext_key_usage: [serverAuth]
`

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadInput is the bad-input table at the CLI: every refusal
// exits non-zero with a message naming the reason, and records nothing as
// issued.
func TestBadInput(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	c := newSoftCA(t)
	cfgPath := filepath.Join(c.dir, "mica.yaml")
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(narrowProfiles)
	f.Close()

	// A copy of the configuration that reads a wrong passphrase.
	yaml, _ := os.ReadFile(cfgPath)
	wrongSecret := newSecret(t)
	c.secrets = append(c.secrets, wrongSecret)
	wrongFile := writeSecret(t, t.TempDir(), "wrong", wrongSecret)
	wrongYAML := regexp.MustCompile(`(?m)^(\s*secret_file:).*$`).ReplaceAllString(string(yaml), "${1} "+wrongFile)
	wrongCfg := writeFile(t, "wrong.yaml", []byte("data_dir: "+c.dir+"\n"+wrongYAML))

	good := makeCSR(t, csrOpts{cn: "ok.test"})
	der := makeCSR(t, csrOpts{cn: "badsig.test", outform: "DER"})
	derBytes, _ := os.ReadFile(der)
	derBytes[len(derBytes)-1] ^= 0x55 // inside the signature's s value

	tests := []struct {
		name    string
		cn      string // must not be issued afterwards
		csr     string
		args    []string
		code    int
		reasons []string
	}{
		{"malformed CSR file", "", writeFile(t, "junk.csr", []byte("hello, this is not a certificate request\n")),
			nil, exitRefused, []string{"CSR"}},
		{"base64 garbage in PEM armour", "", writeFile(t, "garbage.pem", []byte("-----BEGIN CERTIFICATE REQUEST-----\n!!not*base64$$\n-----END CERTIFICATE REQUEST-----\n")),
			nil, exitRefused, []string{"CSR"}},
		{"valid base64 of garbage", "", writeFile(t, "garbage2.pem", []byte("-----BEGIN CERTIFICATE REQUEST-----\n"+
			base64.StdEncoding.EncodeToString([]byte("definitely not DER, just some bytes"))+"\n-----END CERTIFICATE REQUEST-----\n")),
			nil, exitRefused, []string{"CSR"}},
		{"bad signature", "badsig.test", writeFile(t, "badsig.der", derBytes),
			nil, exitRefused, []string{"signature"}},
		{"RSA-1024", "rsa1024.test", makeCSR(t, csrOpts{cn: "rsa1024.test", newkey: []string{"-newkey", "rsa:1024"}}),
			nil, exitRefused, []string{"RSA", "1024"}},
		{"P-224", "p224.test", makeCSR(t, csrOpts{cn: "p224.test", newkey: []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-224"}}),
			nil, exitRefused, []string{"P-224"}},
		{"unknown curve secp256k1", "k1.test", makeCSR(t, csrOpts{cn: "k1.test", newkey: []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"}}),
			nil, exitRefused, []string{"secp256k1"}},
		{"name outside the profile", "evil.test", makeCSR(t, csrOpts{cn: "evil.test"}),
			[]string{"--profile", "web"}, exitRefused, []string{"evil.test", "web"}},
		{"lifetime over the cap", "cap.example.test", makeCSR(t, csrOpts{cn: "cap.example.test"}),
			[]string{"--profile", "web", "--lifetime", "60d"}, exitRefused, []string{"lifetime", "30d"}},
		{"not-after over the cap", "na.example.test", makeCSR(t, csrOpts{cn: "na.example.test"}),
			[]string{"--profile", "server", "--not-after", "2099-01-01T00:00:00Z"}, exitRefused, []string{"lifetime"}},
		{"unknown profile", "unknown.test", makeCSR(t, csrOpts{cn: "unknown.test"}),
			[]string{"--profile", "nope"}, exitRefused, []string{"profile", "nope"}},
		{"wrong passphrase", "wrongpp.test", makeCSR(t, csrOpts{cn: "wrongpp.test"}),
			[]string{"--config", wrongCfg}, exitUnavailable, []string{"wrong PIN or passphrase"}},
		{"missing CSR file", "", filepath.Join(t.TempDir(), "absent.csr"),
			nil, exitUsage, []string{"--csr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sub := *c
			sub.t = t
			args := []string{"cert", "issue", "--csr", tt.csr}
			if !strings.Contains(strings.Join(tt.args, " "), "--profile") {
				args = append(args, "--profile", "server")
			}
			args = append(args, tt.args...)
			if !strings.Contains(strings.Join(tt.args, " "), "--config") {
				args = append(args, "--data", c.dir)
			}
			out := filepath.Join(t.TempDir(), "out.pem")
			args = append(args, "--out", out)
			wantExit(t, sub.run(args...), tt.code, tt.reasons...)
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a refused request wrote %s", out)
			}
			if tt.cn != "" {
				if got := sub.list("-q", tt.cn, "--state", "issued"); len(got) != 0 {
					t.Errorf("cert list shows %+v issued for a refused request", got)
				}
			}
		})
	}
	t.Run("controls", func(t *testing.T) {
		// The same CA issues in-policy requests, so the refusals above
		// are about the request, not a broken CA. (This runs before the
		// parallel cases, which is why their names differ from these.)
		sub := *c
		sub.t = t
		sub.must("cert", "issue", "--data", c.dir, "--csr", makeCSR(t, csrOpts{cn: "www.example.test"}), "--profile", "web", "--lifetime", "30d")
		sub.must("cert", "issue", "--data", c.dir, "--csr", good, "--profile", "server")
	})
}

// TestBadInputRecordsNothing runs a refusal of every kind against a fresh
// CA and then checks the whole inventory: nothing issued, nothing even
// requested (the checks run before the record step).
func TestBadInputRecordsNothing(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	c := newSoftCA(t)
	csrs := map[string][]string{
		"rsa1024": {"--csr", makeCSR(t, csrOpts{cn: "r.test", newkey: []string{"-newkey", "rsa:1024"}}), "--profile", "server"},
		"p224":    {"--csr", makeCSR(t, csrOpts{cn: "p.test", newkey: []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-224"}}), "--profile", "server"},
		"profile": {"--csr", makeCSR(t, csrOpts{cn: "u.test"}), "--profile", "nope"},
		"cap":     {"--csr", makeCSR(t, csrOpts{cn: "l.test"}), "--profile", "server", "--lifetime", "400d"},
	}
	for name, args := range csrs {
		if r := c.run(c.data(append([]string{"cert", "issue"}, args...)...)...); r.code == 0 {
			t.Errorf("%s: issued, want refusal\n%v", name, r)
		}
	}
	if got := c.list(); len(got) != 0 {
		t.Errorf("after refusals the inventory holds %+v, want nothing", got)
	}
}
