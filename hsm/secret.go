package hsm

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Secret holds a PIN or passphrase. Its formatting methods never reveal the
// value, so a Secret can sit in a config struct that gets logged or dumped.
type Secret struct{ b []byte }

// NewSecret wraps b; the caller should not keep using b.
func NewSecret(b []byte) Secret { return Secret{b: b} }

// LoadSecret reads a secret from a file (trailing newline trimmed) or, when
// file is empty, from the environment variable env. An empty result is an
// error naming where it looked, never the value.
func LoadSecret(file, env string) (Secret, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return Secret{}, fmt.Errorf("hsm: reading secret file: %w", err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return Secret{}, fmt.Errorf("hsm: secret file %s is empty", file)
		}
		return Secret{b: []byte(s)}, nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return Secret{}, fmt.Errorf("hsm: environment variable %s is not set", env)
		}
		return Secret{b: []byte(v)}, nil
	}
	return Secret{}, nil
}

// Bytes returns the secret value. Use it only to hand the secret to the
// module or KDF that needs it.
func (s Secret) Bytes() []byte { return s.b }

// Empty reports whether no secret was given.
func (s Secret) Empty() bool { return len(s.b) == 0 }

// Equal compares in constant time.
func (s Secret) Equal(o Secret) bool { return subtle.ConstantTimeCompare(s.b, o.b) == 1 }

func (s Secret) String() string                { return "[REDACTED]" }
func (s Secret) GoString() string              { return "hsm.Secret{[REDACTED]}" }
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte("[REDACTED]")) }
func (s Secret) MarshalText() ([]byte, error)  { return []byte("[REDACTED]"), nil }
func (s Secret) MarshalJSON() ([]byte, error)  { return []byte(`"[REDACTED]"`), nil }
func (s Secret) LogValue() slog.Value          { return slog.StringValue("[REDACTED]") }
