package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

const header = `# MICA configuration (https://github.com/mica-pki/mica, docs/configuration.md).
# Relative paths resolve against the directory holding this file (or data_dir).
# Never put a PIN or passphrase here: use keys.secret_file or keys.secret_env.
# Empty urls are derived from server.http_listen. Without a profiles section the
# built-in profiles apply; "mica config show" prints them, ready to copy here.
`

// Write stores c at path atomically (temporary file, then rename), with
// paths under the data directory written relative to it so the directory
// can be moved as a whole. data_dir is written only when the file does not
// sit in the data directory itself.
func (c *Config) Write(path string) error {
	absPath, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	w := *c
	if filepath.Dir(absPath) == c.DataDir {
		w.DataDir = ""
	}
	rel := func(p string) string {
		if r, err := filepath.Rel(c.DataDir, p); err == nil && filepath.IsAbs(p) && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	if rest, ok := strings.CutPrefix(w.Database, "sqlite:"); ok {
		w.Database = "sqlite:" + rel(rest)
	}
	w.Keys.Backend = mapURIPaths(w.Keys.Backend, rel)
	w.Keys.RootBackend = mapURIPaths(w.Keys.RootBackend, rel)
	w.Keys.SecretFile = rel(w.Keys.SecretFile)
	w.Keys.RootSecretFile = rel(w.Keys.RootSecretFile)
	if c.profilesDefaulted {
		w.Profiles = nil
	}
	body, err := w.marshal()
	if err != nil {
		return err
	}
	return WriteFileAtomic(absPath, append([]byte(header), body...), 0o640)
}

// Redacted returns the effective configuration as YAML for display. It can
// show no PIN or passphrase because Config never holds one; a password in
// a PostgreSQL DSN is masked.
func (c *Config) Redacted() ([]byte, error) {
	e := c.Effective()
	e.Database = RedactDSN(e.Database)
	return e.marshal()
}

func (c *Config) marshal() ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := rewriteProfileDurations(mapValue(&n, "profiles"), goToHuman); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	b, err := yaml.Marshal(&n)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return b, nil
}

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)

// RedactDSN masks the password of a PostgreSQL URL or keyword/value DSN, so
// the DSN can be shown or logged.
func RedactDSN(dsn string) string {
	if !strings.Contains(dsn, "://") {
		return dsnPassword.ReplaceAllString(dsn, "${1}REDACTED")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		// Cannot tell where a password would be: show only the scheme.
		scheme, _, _ := strings.Cut(dsn, "://")
		return scheme + "://(unparsable, hidden)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "REDACTED")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// WriteFileAtomic writes data to a temporary file in path's directory, syncs
// it and renames it over path, so a reader (or a crash) never sees a partial
// file. cmd/mica uses it for certificates too.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// Sync the directory so the rename itself survives a power cut.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
