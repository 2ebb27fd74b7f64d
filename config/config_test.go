package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/ca"
)

func TestDefault(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := Default(dir)
	if err := c.Validate(); err != nil {
		t.Fatalf("Default(%s).Validate() = %v", dir, err)
	}
	checks := map[string][2]string{
		"database":     {c.Database, "sqlite:" + filepath.Join(dir, "mica.db")},
		"keys.backend": {c.Keys.Backend, "softkms:dir=" + filepath.Join(dir, "keys")},
		"listen":       {c.Server.Listen, "127.0.0.1:8443"},
		"http_listen":  {c.Server.HTTPListen, "127.0.0.1:8080"},
		"crl_base":     {c.EffectiveURLs().CRLBase, "http://127.0.0.1:8080/crl/"},
		"ocsp":         {c.EffectiveURLs().OCSP, "http://127.0.0.1:8080/ocsp"},
		"ca_issuers":   {c.EffectiveURLs().CAIssuersBase, "http://127.0.0.1:8080/ca/"},
	}
	for name, v := range checks {
		if v[0] != v[1] {
			t.Errorf("Default %s = %q, want %q", name, v[0], v[1])
		}
	}
	if c.Server.MaxBodyBytes != 1<<20 {
		t.Errorf("MaxBodyBytes = %d, want 1 MiB", c.Server.MaxBodyBytes)
	}
	if len(c.Profiles) != len(ca.DefaultProfiles()) {
		t.Errorf("Profiles = %d, want the %d defaults", len(c.Profiles), len(ca.DefaultProfiles()))
	}
}

func TestWriteLoadRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := Default(dir)
	c.Keys.SecretFile = filepath.Join(dir, "passphrase")
	c.CA.OfflineRoot = true
	c.Keys.RootBackend = hsmSoft(filepath.Join(dir, "offline-root"))
	c.Server.Names = []string{"ca.example.test", "10.0.0.1"}
	path := Path(dir)
	if err := c.Write(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	text := string(raw)
	// Paths under the data dir are written relative so the dir can move.
	for _, want := range []string{"database: sqlite:mica.db", "backend: softkms:dir=keys", "secret_file: passphrase", "root_validity: 3652d"} {
		if !strings.Contains(text, want) {
			t.Errorf("written mica.yaml lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\ndata_dir:") || strings.Contains(text, "\nprofiles:") {
		t.Errorf("written mica.yaml has data_dir or default profiles:\n%s", text)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.Database != c.Database || got.Keys != c.Keys || got.CA != c.CA || got.Server.Listen != c.Server.Listen {
		t.Errorf("Load(Write(c)) = %+v, want %+v", got, c)
	}

	// Moving the directory moves every path with it.
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	m, err := Load(Path(moved))
	if err != nil {
		t.Fatal(err)
	}
	if want := "sqlite:" + filepath.Join(moved, "mica.db"); m.Database != want {
		t.Errorf("after move Database = %q, want %q", m.Database, want)
	}
	if want := filepath.Join(moved, "passphrase"); m.Keys.SecretFile != want {
		t.Errorf("after move SecretFile = %q, want %q", m.Keys.SecretFile, want)
	}
}

func hsmSoft(dir string) string { return "softkms:dir=" + dir }

func TestLoadMissing(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "mica.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestConfigFileOutsideDataDir(t *testing.T) {
	t.Parallel()
	etc := t.TempDir()
	path := filepath.Join(etc, "mica.yaml")
	if err := os.WriteFile(path, []byte("data_dir: ../var\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(etc), "var"); c.DataDir != want {
		t.Errorf("DataDir = %q, want %q", c.DataDir, want)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"pin key", "keys:\n  backend: softkms:dir=k\n  pin: 1234\n", []string{"keys.pin", "secret_file", "secret_env", "line 3"}},
		{"passphrase key", "keys:\n  passphrase: hunter2\n", []string{"keys.passphrase", "secret_file"}},
		{"nested password", "server:\n  tls:\n    Password: x\n", []string{"server.tls.Password"}},
		{"pin-value in uri", "keys:\n  backend: pkcs11:token=mica?pin-value=1234\n", []string{"keys.backend", "pin-value"}},
		{"unknown field", "keys:\n  secert_file: f\n", []string{"unknown field keys.secert_file", "line 2"}},
		{"unknown top", "listen: 1\n", []string{"unknown field listen"}},
		{"bad key type", "ca:\n  root_key_type: DSA-1024\n", []string{"ca.root_key_type"}},
		{"bad validity", "ca:\n  root_validity: forever\n", []string{"ca.root_validity", "invalid duration", "forever"}},
		{"issuing > root", "ca:\n  root_validity: 1y\n  issuing_validity: 2y\n", []string{"ca.issuing_validity"}},
		{"same ids", "ca:\n  root_id: x\n  issuing_id: x\n", []string{"ca.issuing_id"}},
		{"bad id", "ca:\n  root_id: Root CA\n", []string{"ca.root_id"}},
		{"bad listen", "server:\n  listen: localhost\n", []string{"server.listen"}},
		{"bad name", "server:\n  names: [\"bad name!\"]\n", []string{"server.names[0]"}},
		{"bad url", "urls:\n  crl_base: ftp://x/\n", []string{"urls.crl_base"}},
		{"base without slash", "urls:\n  ca_issuers_base: http://x/ca\n", []string{"urls.ca_issuers_base", "'/'"}},
		{"bad backend", "keys:\n  backend: tpm:foo\n", []string{"keys.backend", "tpm"}},
		{"two secrets", "keys:\n  secret_file: f\n  secret_env: E\n", []string{"keys.secret_file", "not both"}},
		{"bad db", "database: mysql://x\n", []string{"database"}},
		{"log level", "log:\n  level: loud\n", []string{"log.level"}},
		{"log format", "log:\n  format: xml\n", []string{"log.format"}},
		{"body cap", "server:\n  max_body_bytes: 10\n", []string{"server.max_body_bytes"}},
		{"profile lifetime", "profiles:\n  web:\n    max_lifetime: 30d\n    default_lifetime: 60d\n    ext_key_usage: [serverAuth]\n", []string{"profiles.web.default_lifetime"}},
		{"profile name", "profiles:\n  Web:\n    max_lifetime: 30d\n", []string{"profiles.Web"}},
		{"profile duration", "profiles:\n  web:\n    max_lifetime: soon\n", []string{"profiles.web.max_lifetime"}},
		{"profile unknown field", "profiles:\n  web:\n    max_life: 30d\n", []string{"unknown field profiles.web.max_life"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.yaml), t.TempDir())
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want one mentioning %q", tt.yaml, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%q) = %q, want it to mention %q", tt.yaml, err, w)
				}
			}
			// The value of a secret never appears in the error.
			for _, secret := range []string{"1234", "hunter2"} {
				if strings.Contains(tt.yaml, secret) && strings.Contains(err.Error(), secret) {
					t.Errorf("Parse error %q reveals the secret %q", err, secret)
				}
			}
		})
	}
}

func TestProfilesFromFile(t *testing.T) {
	t.Parallel()
	y := `profiles:
  web:
    description: only example.test
    dns: ["*.example.test"]
    max_lifetime: 30d
    default_lifetime: 36h
    ext_key_usage: [serverAuth]
`
	c, err := Parse([]byte(y), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := c.Profiles["web"]
	if !ok || len(c.Profiles) != 1 {
		t.Fatalf("Profiles = %v, want only web (a profiles section replaces the defaults)", c.Profiles)
	}
	if p.Name != "web" || p.MaxLifetime != 30*Day || p.DefaultLifetime != 36*time.Hour {
		t.Errorf("web = %+v, want name web, max 30d, default 36h", p)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"max_lifetime: 30d", "default_lifetime: 36h"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Redacted() lacks %q:\n%s", want, out)
		}
	}
	// What Redacted prints loads back (config show output is copyable).
	back, err := Parse(out, t.TempDir())
	if err != nil {
		t.Fatalf("Parse(Redacted()) = %v\n%s", err, out)
	}
	if back.Profiles["web"].MaxLifetime != 30*Day {
		t.Errorf("round trip MaxLifetime = %v", back.Profiles["web"].MaxLifetime)
	}
}

func TestRedactedHidesDSNPassword(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{
		"postgres://mica:s3cretpw@db.test:5432/mica?sslmode=disable",
		"postgres://mica@db.test/mica?password=s3cretpw",
	} {
		c := Default(t.TempDir())
		c.Database = dsn
		out, err := c.Redacted()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "s3cretpw") {
			t.Errorf("Redacted() shows the DSN password:\n%s", out)
		}
		if !strings.Contains(string(out), "db.test") {
			t.Errorf("Redacted() lost the DSN host:\n%s", out)
		}
	}
	if got := RedactDSN("host=db password='a b' user=x"); strings.Contains(got, "a b") {
		t.Errorf("RedactDSN(keyword form) = %q", got)
	}
}

func TestEffectiveURLs(t *testing.T) {
	t.Parallel()
	c := Default(t.TempDir())
	c.Server.HTTPListen = "127.0.0.1:18080"
	c.URLs.OCSP = "http://ocsp.example.test/"
	u := c.EffectiveURLs()
	if u.CRLBase != "http://127.0.0.1:18080/crl/" || u.OCSP != "http://ocsp.example.test/" {
		t.Errorf("EffectiveURLs() = %+v", u)
	}
	c.Server.HTTPListen = "[::1]:80"
	if got := c.EffectiveURLs().CAIssuersBase; got != "http://[::1]:80/ca/" {
		t.Errorf("IPv6 CAIssuersBase = %q", got)
	}
	c.Server.HTTPListen = ":8080"
	if got := c.EffectiveURLs().CRLBase; strings.Contains(got, "//:") || strings.Contains(got, "0.0.0.0") {
		t.Errorf("wildcard listener gave unusable CRLBase %q", got)
	}
}

func TestDurations(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"90d": 90 * Day, "10y": 10 * Year, "36h": 36 * time.Hour, "1h30m": 90 * time.Minute,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "-3d", "1.5y", "10 years", "99999y"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) = nil error", bad)
		}
	}
	for d, want := range map[time.Duration]string{
		10 * Year: "10y", 90 * Day: "90d", 36 * time.Hour: "36h", 90 * time.Minute: "1h30m", 15 * time.Second: "15s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestURIPaths(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("keys:\n  backend: pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=mica?pin-source=pin.txt\n"), "/data")
	if err != nil {
		t.Fatal(err)
	}
	want := "pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=mica?pin-source=pin.txt"
	if c.Keys.Backend != want {
		t.Errorf("pkcs11 backend = %q, want it unchanged %q", c.Keys.Backend, want)
	}
	if got := mapURIPaths("softkms:dir=my%20keys", func(p string) string { return "/d/" + p }); got != "softkms:dir=/d/my%20keys" {
		t.Errorf("mapURIPaths = %q", got)
	}
	if got := URIPath("softkms:dir=/a%20b", "dir"); got != "/a b" {
		t.Errorf("URIPath = %q", got)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "x.pem")
	if err := WriteFileAtomic(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "two" || fi.Mode().Perm() != 0o600 {
		t.Errorf("WriteFileAtomic: content %q mode %v", b, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("WriteFileAtomic left temporary files: %v", entries)
	}
}

func TestKeySecrets(t *testing.T) {
	// Not parallel: t.Setenv.
	t.Setenv("MICA_CONFIG_TEST_SECRET", "from-env")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pin"), []byte("from-file\n"), 0o600)
	c, err := Parse([]byte("keys:\n  secret_file: pin\n  root_backend: softkms:dir=offline\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Keys.Secret()
	if err != nil || string(s.Bytes()) != "from-file" {
		t.Errorf("Secret() = %q, %v; want from-file (relative secret_file resolved against the data dir)", s.Bytes(), err)
	}
	rs, err := c.Keys.RootSecret()
	if err != nil || string(rs.Bytes()) != "from-file" {
		t.Errorf("RootSecret() without root secret = %q, %v; want the main secret", rs.Bytes(), err)
	}
	c.Keys.RootSecretEnv = "MICA_CONFIG_TEST_SECRET"
	if rs, err := c.Keys.RootSecret(); err != nil || string(rs.Bytes()) != "from-env" {
		t.Errorf("RootSecret() = %q, %v; want from-env", rs.Bytes(), err)
	}
	out, _ := c.Redacted()
	if strings.Contains(string(out), "from-file") || strings.Contains(string(out), "from-env") {
		t.Errorf("Redacted() shows a secret:\n%s", out)
	}
}
