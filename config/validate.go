package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mica-pki/mica/hsm"
)

// idPattern constrains issuer and profile names: they appear in URLs
// (/crl/{issuer}.crl, /acme/{profile}/directory) and file names.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Validate checks every field and reports all problems at once, each naming
// the field as it is spelled in mica.yaml.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		bad("data_dir", "must be an absolute path, got %q", c.DataDir)
	}
	switch {
	case strings.HasPrefix(c.Database, "sqlite:"):
		if strings.TrimPrefix(c.Database, "sqlite:") == "" {
			bad("database", "sqlite: needs a file path")
		}
	case strings.HasPrefix(c.Database, "postgres://"), strings.HasPrefix(c.Database, "postgresql://"):
		if _, err := url.Parse(c.Database); err != nil {
			bad("database", "not a valid PostgreSQL URL")
		}
	default:
		bad("database", "want sqlite:PATH or postgres://…, got %q", RedactDSN(c.Database))
	}

	checkBackend := func(field, uri string, required bool) {
		if uri == "" {
			if required {
				bad(field, "must be set (softkms:dir=… or pkcs11:…)")
			}
			return
		}
		scheme, _, _ := strings.Cut(uri, ":")
		if scheme != "softkms" && scheme != "pkcs11" {
			bad(field, "unknown backend %q (want softkms:dir=… or pkcs11:…)", scheme)
		}
		if hasPINValue(uri) {
			bad(field, "the URI carries a pin-value; put the PIN in keys.secret_file or keys.secret_env instead")
		}
	}
	checkBackend("keys.backend", c.Keys.Backend, true)
	checkBackend("keys.root_backend", c.Keys.RootBackend, false)
	if c.Keys.SecretFile != "" && c.Keys.SecretEnv != "" {
		bad("keys.secret_file", "set either keys.secret_file or keys.secret_env, not both")
	}
	if c.Keys.RootSecretFile != "" && c.Keys.RootSecretEnv != "" {
		bad("keys.root_secret_file", "set either keys.root_secret_file or keys.root_secret_env, not both")
	}
	if c.Keys.RootBackend == "" && (c.Keys.RootSecretFile != "" || c.Keys.RootSecretEnv != "") {
		bad("keys.root_secret_file", "is set but keys.root_backend is not")
	}

	for field, id := range map[string]string{"ca.root_id": c.CA.RootID, "ca.issuing_id": c.CA.IssuingID} {
		if id != "" && !idPattern.MatchString(id) {
			bad(field, "%q must be lower-case letters, digits, '.', '_' or '-' (it appears in URLs)", id)
		}
	}
	if c.CA.RootID != "" && c.CA.RootID == c.CA.IssuingID {
		bad("ca.issuing_id", "must differ from ca.root_id")
	}
	if _, err := hsm.ParseKeyType(c.CA.RootKeyType); err != nil {
		bad("ca.root_key_type", "%v", err)
	}
	if _, err := hsm.ParseKeyType(c.CA.IssuingKeyType); err != nil {
		bad("ca.issuing_key_type", "%v", err)
	}
	if c.CA.RootValidity <= 0 {
		bad("ca.root_validity", "must be positive")
	}
	if c.CA.IssuingValidity <= 0 {
		bad("ca.issuing_validity", "must be positive")
	}
	if c.CA.IssuingValidity > c.CA.RootValidity {
		bad("ca.issuing_validity", "%s is longer than ca.root_validity %s", c.CA.IssuingValidity, c.CA.RootValidity)
	}

	checkURL := func(field, v string, base bool) {
		if v == "" {
			return
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(field, "%q is not an absolute http(s) URL", v)
			return
		}
		if base && !strings.HasSuffix(v, "/") {
			bad(field, "%q must end in '/' (the issuer id is appended)", v)
		}
	}
	checkURL("urls.crl_base", c.URLs.CRLBase, true)
	checkURL("urls.ocsp", c.URLs.OCSP, false)
	checkURL("urls.ca_issuers_base", c.URLs.CAIssuersBase, true)

	for field, addr := range map[string]string{"server.listen": c.Server.Listen, "server.http_listen": c.Server.HTTPListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(field, "%q is not HOST:PORT", addr)
		}
	}
	for i, n := range c.Server.Names {
		if net.ParseIP(n) == nil && !validDNSName(n) {
			bad(fmt.Sprintf("server.names[%d]", i), "%q is neither an IP address nor a DNS name", n)
		}
	}
	if c.Server.ShutdownTimeout <= 0 {
		bad("server.shutdown_timeout", "must be positive")
	}
	if c.Server.MaxBodyBytes < 1024 {
		bad("server.max_body_bytes", "must be at least 1024, got %d", c.Server.MaxBodyBytes)
	}

	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "warning", "error":
	default:
		bad("log.level", "%q (want debug, info, warn or error)", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "%q (want text or json)", c.Log.Format)
	}

	for name, p := range c.Profiles {
		field := "profiles." + name
		if !idPattern.MatchString(name) {
			bad(field, "profile name must be lower-case letters, digits, '.', '_' or '-' (it appears in URLs)")
		}
		if p.MaxLifetime <= 0 {
			bad(field+".max_lifetime", "must be positive")
		}
		if p.DefaultLifetime < 0 || p.DefaultLifetime > p.MaxLifetime {
			bad(field+".default_lifetime", "%s must be between 0 and max_lifetime %s",
				FormatDuration(p.DefaultLifetime), FormatDuration(p.MaxLifetime))
		}
		// Key types, usages and name patterns are checked by ca, which
		// owns their vocabulary (it accepts EC-P521 subjects, for one).
	}
	errs = append(errs, c.Revocation.validate()...)
	errs = append(errs, c.validateEST()...)
	errs = append(errs, c.validateACME()...)
	errs = append(errs, c.Discovery.validate()...)
	errs = append(errs, c.Alerts.validate()...)
	if err := c.KeyPolicy.CheckRetention(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimPrefix(s, "*."), ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// secretKeys are mapping keys that would put a secret into the file,
// compared with case, '-' and '_' ignored.
var secretKeys = map[string]bool{
	"pin": true, "passphrase": true, "password": true, "pinvalue": true,
	"sopin": true, "userpin": true, "secret": true, "rootpin": true, "rootpassphrase": true,
}

func normKey(s string) string {
	return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(s))
}

func hasPINValue(s string) bool { return strings.Contains(strings.ToLower(s), "pin-value=") }

// rejectSecrets refuses a document that holds a PIN or passphrase anywhere.
// The error names the field and the line, never the value.
func rejectSecrets(n *yaml.Node, path string) error {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if err := rejectSecrets(c, path); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			field := k.Value
			if path != "" {
				field = path + "." + k.Value
			}
			if secretKeys[normKey(k.Value)] {
				return fmt.Errorf("line %d: %s: PINs and passphrases must never be written in mica.yaml; "+
					"put the secret in a file (keys.secret_file) or an environment variable (keys.secret_env)", k.Line, field)
			}
			if err := rejectSecrets(v, field); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		if hasPINValue(n.Value) {
			return fmt.Errorf("line %d: %s: a pin-value in a URI would put the PIN in mica.yaml; "+
				"use keys.secret_file or keys.secret_env", n.Line, path)
		}
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// checkKnown reports the first mapping key that no field of t takes.
func checkKnown(n *yaml.Node, t reflect.Type, path string) error {
	if n == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[Duration]() && n.Kind == yaml.ScalarNode {
		// Checked here, where the field's name is known; yaml.v3 would
		// report only the line.
		if _, err := ParseDuration(n.Value); err != nil {
			return fmt.Errorf("line %d: %s: %w", n.Line, path, err)
		}
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // yaml.v3 reports the type mismatch with its line
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			f, ok := fieldByYAMLName(t, k.Value)
			if !ok {
				return fmt.Errorf("line %d: unknown field %s", k.Line, join(k.Value))
			}
			if err := checkKnown(n.Content[i+1], f.Type, join(k.Value)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKnown(n.Content[i+1], t.Elem(), join(n.Content[i].Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKnown(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func fieldByYAMLName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// docRoot returns the top mapping of a parsed document, or nil if empty.
func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0]
	}
	if doc.Kind == yaml.MappingNode {
		return doc
	}
	return nil
}

// mapValue returns the value node of key in the document's top mapping.
func mapValue(doc *yaml.Node, key string) *yaml.Node {
	root := docRoot(doc)
	if root == nil || root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == key {
			return root.Content[i+1]
		}
	}
	return nil
}
