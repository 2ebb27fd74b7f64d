package hsm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mica-pki/mica/hsm"
)

const secretValue = "s3cr3t-PIN-value"

func TestSecretNeverFormatted(t *testing.T) {
	s := hsm.NewSecret([]byte(secretValue))
	cfg := hsm.Config{URI: "softkms:dir=/x", Secret: s}
	ptr := &s
	cases := map[string]string{
		"String":     s.String(),
		"GoString":   s.GoString(),
		"%v":         fmt.Sprintf("%v", s),
		"%+v":        fmt.Sprintf("%+v", s),
		"%#v":        fmt.Sprintf("%#v", s),
		"%s":         fmt.Sprintf("%s", s),
		"%q":         fmt.Sprintf("%q", s),
		"%x":         fmt.Sprintf("%x", s),
		"%d":         fmt.Sprintf("%d", s),
		"pointer %v": fmt.Sprintf("%v", ptr),
		"config %v":  fmt.Sprintf("%v", cfg),
		"config %+v": fmt.Sprintf("%+v", cfg),
		"config %#v": fmt.Sprintf("%#v", cfg),
		"Errorf %v":  fmt.Errorf("wrapped: %v", s).Error(),
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cases["json config"] = string(j)
	js, _ := json.Marshal(map[string]any{"pin": s, "ptr": ptr})
	cases["json map"] = string(js)
	tx, _ := s.MarshalText()
	cases["MarshalText"] = string(tx)
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		l := slog.New(h(&buf))
		l.Info("open", "secret", s, "cfg", cfg, "ptr", ptr)
		l.Info("group", slog.Group("g", slog.Any("pin", s)))
		cases["slog "+fmt.Sprintf("%T", h(&bytes.Buffer{}))] = buf.String()
	}
	for name, out := range cases {
		if strings.Contains(out, secretValue) {
			t.Errorf("%s reveals the secret: %s", name, out)
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("%s does not say REDACTED: %s", name, out)
		}
	}
	if string(s.Bytes()) != secretValue {
		t.Fatal("Bytes must return the value")
	}
}

func TestSecretEqualEmpty(t *testing.T) {
	a, b := hsm.NewSecret([]byte("1234")), hsm.NewSecret([]byte("1234"))
	if !a.Equal(b) || a.Equal(hsm.NewSecret([]byte("12345"))) || a.Empty() || !(hsm.Secret{}).Empty() {
		t.Fatal("Equal/Empty misbehave")
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("MICA_TEST_PIN", secretValue)
	t.Setenv("MICA_TEST_EMPTY", "")
	tests := []struct {
		name, file, env, want string
		wantErr               bool
	}{
		{name: "file with newline", file: write("nl", secretValue+"\n"), want: secretValue},
		{name: "file with CRLF", file: write("crlf", secretValue+"\r\n"), want: secretValue},
		{name: "file without newline", file: write("plain", secretValue), want: secretValue},
		{name: "file wins over env", file: write("w", "fromfile\n"), env: "MICA_TEST_PIN", want: "fromfile"},
		{name: "empty file", file: write("empty", "\n"), wantErr: true},
		{name: "missing file", file: filepath.Join(dir, "nope"), wantErr: true},
		{name: "env", env: "MICA_TEST_PIN", want: secretValue},
		{name: "empty env", env: "MICA_TEST_EMPTY", wantErr: true},
		{name: "unset env", env: "MICA_TEST_UNSET_XYZ", wantErr: true},
		{name: "neither", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := hsm.LoadSecret(tc.file, tc.env)
			if tc.wantErr {
				if err == nil {
					t.Fatal("want error")
				}
				if strings.Contains(err.Error(), secretValue) {
					t.Fatalf("error reveals secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(s.Bytes()) != tc.want {
				t.Fatalf("got %q, want %q", s.Bytes(), tc.want)
			}
		})
	}
}
