package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
)

// FileName is the name of the configuration file inside a data directory.
const FileName = "mica.yaml"

// Defaults for fields a user may omit.
const (
	DefaultListen          = "127.0.0.1:8443"
	DefaultHTTPListen      = "127.0.0.1:8080"
	DefaultShutdownTimeout = 15 * time.Second
	DefaultMaxBodyBytes    = 1 << 20
	DefaultRootValidity    = ca.DefaultRootValidity
	DefaultIssuingValidity = ca.DefaultIssuingValidity
	DefaultRootKeyType     = hsm.ECP384
	DefaultIssuingKeyType  = hsm.ECP256
)

// Config is the whole of mica.yaml. It never holds a PIN or passphrase: see
// the package documentation.
type Config struct {
	// DataDir holds mica.yaml, the SQLite database, software keys and the
	// PEM files init writes. Absolute after Load/Default.
	DataDir string `yaml:"data_dir,omitempty"`
	// Database is "sqlite:PATH" or a postgres:// URL.
	Database string                `yaml:"database"`
	Keys     Keys                  `yaml:"keys"`
	CA       CA                    `yaml:"ca"`
	URLs     ca.URLs               `yaml:"urls"`
	Server   Server                `yaml:"server"`
	Log      Log                   `yaml:"log"`
	Profiles map[string]ca.Profile `yaml:"profiles,omitempty"`
	// Revocation tunes CRLs and OCSP (see revocation.go).
	Revocation Revocation `yaml:"revocation"`
	// ACME configures the ACME front end (see acme.go).
	ACME ACME `yaml:"acme,omitempty"`
	// EST configures the EST front end (see est.go, docs/est.md).
	EST EST `yaml:"est,omitempty"`
	// Discovery configures scans and imports (see discovery.go).
	Discovery Discovery `yaml:"discovery,omitempty"`
	// KeyPolicy sets cryptoperiods and rotation (see keypolicy.go, docs/keys.md).
	KeyPolicy KeyPolicy `yaml:"key_policy,omitempty"`
	// Alerts configures signed webhook alerts (see alerts.go, docs/inventory.md).
	Alerts Alerts `yaml:"alerts,omitempty"`

	// profilesDefaulted records that Profiles came from ca.DefaultProfiles,
	// so Write leaves them out and later versions' defaults apply.
	profilesDefaulted bool
}

// Keys selects the key backends and where their secrets come from.
type Keys struct {
	// Backend is the URI of the backend holding the issuing key (and the
	// root key unless RootBackend is set), e.g. "softkms:dir=keys" or
	// "pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=mica".
	Backend    string `yaml:"backend"`
	SecretFile string `yaml:"secret_file,omitempty"`
	SecretEnv  string `yaml:"secret_env,omitempty"`
	// RootBackend, when set, holds the root key instead (a second token, or
	// a directory on removable media for an offline root). Its secret falls
	// back to SecretFile/SecretEnv when neither root field is set.
	RootBackend    string `yaml:"root_backend,omitempty"`
	RootSecretFile string `yaml:"root_secret_file,omitempty"`
	RootSecretEnv  string `yaml:"root_secret_env,omitempty"`
}

// CA names the two CA certificates init creates. Empty IDs and names take
// ca.Init's defaults ("root-2026", "MICA Root CA 2026", …); init writes
// the values it used back into mica.yaml.
type CA struct {
	RootID          string   `yaml:"root_id,omitempty"`
	IssuingID       string   `yaml:"issuing_id,omitempty"`
	RootKeyType     string   `yaml:"root_key_type"`
	IssuingKeyType  string   `yaml:"issuing_key_type"`
	RootCN          string   `yaml:"root_common_name,omitempty"`
	IssuingCN       string   `yaml:"issuing_common_name,omitempty"`
	Organization    string   `yaml:"organization,omitempty"`
	RootValidity    Duration `yaml:"root_validity"`
	IssuingValidity Duration `yaml:"issuing_validity"`
	OfflineRoot     bool     `yaml:"offline_root"`
}

// Server configures the two listeners.
type Server struct {
	Listen          string   `yaml:"listen"`      // HTTPS
	HTTPListen      string   `yaml:"http_listen"` // plain HTTP: CRL, OCSP, AIA
	Names           []string `yaml:"names,omitempty"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	MaxBodyBytes    int64    `yaml:"max_body_bytes"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// profileFields is the type whose duration fields are rewritten in YAML.
type profileFields = ca.Profile

// Default returns the configuration `mica init` writes for dataDir.
func Default(dataDir string) *Config {
	c := &Config{DataDir: dataDir}
	c.applyDefaults()
	return c
}

// Path returns the mica.yaml path inside dataDir.
func Path(dataDir string) string { return filepath.Join(dataDir, FileName) }

// Load reads, defaults and validates the file at path. A missing file is
// reported wrapping fs.ErrNotExist so callers can suggest `mica init`.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("config: %s does not exist: %w", path, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML as if it were read from a file in dir.
func Parse(b []byte, dir string) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if err := rejectSecrets(&doc, ""); err != nil {
		return nil, err
	}
	if err := rewriteProfileDurations(mapValue(&doc, "profiles"), humanToGo); err != nil {
		return nil, err
	}
	// A typo in a field name must be an error, not a silently ignored
	// setting; checking the node tree keeps the line numbers of the file.
	if err := checkKnown(docRoot(&doc), reflect.TypeFor[Config](), ""); err != nil {
		return nil, err
	}
	c := &Config{}
	if root := docRoot(&doc); root != nil {
		if err := root.Decode(c); err != nil {
			return nil, err
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	switch {
	case c.DataDir == "":
		c.DataDir = abs
	case !filepath.IsAbs(c.DataDir):
		c.DataDir = filepath.Join(abs, c.DataDir)
	}
	c.applyDefaults()
	c.ResolvePaths(c.DataDir)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) applyDefaults() {
	if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.Database, "sqlite:"+filepath.Join(c.DataDir, "mica.db"))
	def(&c.Keys.Backend, hsm.SoftKMSURI(filepath.Join(c.DataDir, "keys")))
	def(&c.CA.RootKeyType, string(DefaultRootKeyType))
	def(&c.CA.IssuingKeyType, string(DefaultIssuingKeyType))
	if c.CA.RootValidity == 0 {
		c.CA.RootValidity = Duration(DefaultRootValidity)
	}
	if c.CA.IssuingValidity == 0 {
		c.CA.IssuingValidity = Duration(DefaultIssuingValidity)
	}
	def(&c.Server.Listen, DefaultListen)
	def(&c.Server.HTTPListen, DefaultHTTPListen)
	if c.Server.ShutdownTimeout == 0 {
		c.Server.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	}
	if c.Server.MaxBodyBytes == 0 {
		c.Server.MaxBodyBytes = DefaultMaxBodyBytes
	}
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "text")
	c.Revocation.applyDefaults()
	if len(c.Profiles) == 0 {
		c.Profiles = ca.DefaultProfiles()
		c.profilesDefaulted = true
	}
	for name, p := range c.Profiles {
		p.Name = name
		c.Profiles[name] = p
	}
}

// ResolvePaths makes the relative file paths in c (SQLite database,
// backend dir=/path=/pin-source=, secret files) absolute against base.
// Load resolves against the data directory; `mica init` resolves its flag
// values against the working directory, as a shell user expects.
func (c *Config) ResolvePaths(base string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	if rest, ok := strings.CutPrefix(c.Database, "sqlite:"); ok {
		c.Database = "sqlite:" + abs(rest)
	}
	c.Keys.Backend = mapURIPaths(c.Keys.Backend, abs)
	c.Keys.RootBackend = mapURIPaths(c.Keys.RootBackend, abs)
	c.Keys.SecretFile = abs(c.Keys.SecretFile)
	c.Keys.RootSecretFile = abs(c.Keys.RootSecretFile)
}

// uriPathKeys are the backend URI attributes that name files or folders.
var uriPathKeys = map[string]bool{"dir": true, "path": true, "pin-source": true}

// mapURIPaths applies f to the (percent-decoded) file attributes of a
// backend URI ("softkms:dir=keys" → "softkms:dir=/data/keys"). Everything
// else, including attribute order, is kept as written.
func mapURIPaths(uri string, f func(string) string) string {
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok || rest == "" {
		return uri
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	parts := strings.Split(rest, ";")
	for i, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok || !uriPathKeys[k] {
			continue
		}
		if dv, err := url.PathUnescape(v); err == nil {
			parts[i] = k + "=" + hsm.EscapeURIValue(f(dv))
		}
	}
	out := scheme + ":" + strings.Join(parts, ";")
	if hasQuery {
		out += "?" + query
	}
	return out
}

// URIPath returns the percent-decoded value of a file attribute (dir=,
// path=) of a backend URI, or "" if it has none.
func URIPath(uri, attr string) string {
	_, rest, _ := strings.Cut(uri, ":")
	rest, _, _ = strings.Cut(rest, "?")
	for _, p := range strings.Split(rest, ";") {
		if k, v, ok := strings.Cut(p, "="); ok && k == attr {
			if dv, err := url.PathUnescape(v); err == nil {
				return dv
			}
		}
	}
	return ""
}

// Secret loads the backend's PIN or passphrase from the file or the
// environment. An empty Secret (neither configured) is not an error here:
// the backend decides whether it needs one.
func (k Keys) Secret() (hsm.Secret, error) { return hsm.LoadSecret(k.SecretFile, k.SecretEnv) }

// RootSecret loads the root backend's secret, falling back to Secret.
func (k Keys) RootSecret() (hsm.Secret, error) {
	if k.RootSecretFile == "" && k.RootSecretEnv == "" {
		return k.Secret()
	}
	return hsm.LoadSecret(k.RootSecretFile, k.RootSecretEnv)
}

// EffectiveURLs fills the URLs left empty from the HTTP listener: an
// unspecified host (":8080", "0.0.0.0:8080") becomes the machine's host name,
// since relying parties cannot fetch from a wildcard address.
func (c *Config) EffectiveURLs() ca.URLs {
	u := c.URLs
	host, port, err := net.SplitHostPort(c.Server.HTTPListen)
	if err != nil {
		return u
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		} else {
			host = "localhost"
		}
	}
	base := "http://" + net.JoinHostPort(host, port)
	if u.CRLBase == "" {
		u.CRLBase = base + "/crl/"
	}
	if u.OCSP == "" {
		u.OCSP = base + "/ocsp"
	}
	if u.CAIssuersBase == "" {
		u.CAIssuersBase = base + "/ca/"
	}
	return u
}

// Effective returns a copy with every derived value filled in, for display.
func (c *Config) Effective() *Config {
	e := *c
	e.URLs = c.EffectiveURLs()
	e.Server.Names = append([]string(nil), c.Server.Names...)
	e.Profiles = make(map[string]ca.Profile, len(c.Profiles))
	for k, v := range c.Profiles {
		e.Profiles[k] = v
	}
	e.profilesDefaulted = false
	e.ACME.Limits = c.ACME.defaultedLimits()
	if len(e.EST.Labels) > 0 {
		// Shown with the defaults filled in; a negative ("off") stays.
		if e.EST.RateLimit == 0 {
			e.EST.RateLimit = DefaultESTRateLimit
		}
		if e.EST.CredentialRateLimit == 0 {
			e.EST.CredentialRateLimit = DefaultESTCredentialRateLimit
		}
	}
	return &e
}

// KeyTypes returns the parsed root and issuing key types. Validate has
// already checked them, so errors only reach callers that skipped it.
func (c *Config) KeyTypes() (root, issuing hsm.KeyType, err error) {
	if root, err = hsm.ParseKeyType(c.CA.RootKeyType); err != nil {
		return "", "", fmt.Errorf("ca.root_key_type: %w", err)
	}
	if issuing, err = hsm.ParseKeyType(c.CA.IssuingKeyType); err != nil {
		return "", "", fmt.Errorf("ca.issuing_key_type: %w", err)
	}
	return root, issuing, nil
}
