package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mica-pki/mica/inventory"
)

// `mica discover files` is fenced like the API: with file_roots spanning
// the data directory and the passphrase file, it still refuses both, and
// /proc/self/environ, exit 3 and a denied audit event each; a certificate
// under the root is read.
func TestDiscoverFilesFenced(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t)
	yaml, _ := os.ReadFile(filepath.Join(c.dir, "mica.yaml"))
	m := regexp.MustCompile(`(?m)^\s*secret_file:\s*(\S+)`).FindStringSubmatch(string(yaml))
	if m == nil {
		t.Fatalf("no secret_file in mica.yaml:\n%s", yaml)
	}
	secretFile := m[1]
	if !filepath.IsAbs(secretFile) {
		secretFile = filepath.Join(c.dir, secretFile)
	}
	certs := t.TempDir()
	pemData, _ := os.ReadFile(filepath.Join(c.dir, rootPEM))
	os.WriteFile(filepath.Join(certs, "root.pem"), pemData, 0o600)
	appendYAML(t, c.dir, "\ndiscovery:\n  file_roots: ["+filepath.Dir(c.dir)+", "+filepath.Dir(secretFile)+", "+certs+"]\n")
	for _, tc := range []struct{ path, why string }{
		{c.dir, "data directory"},
		{filepath.Join(c.dir, rootPEM), "data directory"},
		{secretFile, "data directory"}, // "a system or MICA data directory" names both
		{"/proc/self/environ", "not allowed"},
	} {
		r := c.run(c.data("discover", "files", tc.path)...)
		if r.code != exitRefused || !strings.Contains(r.stderr, tc.why) {
			t.Errorf("discover files %s: exit %d, stderr %q; want %d naming %q", tc.path, r.code, r.stderr, exitRefused, tc.why)
		}
	}
	if r := c.must(c.data("discover", "files", certs)...); !strings.Contains(r.stdout, "1 certificates") {
		t.Errorf("discover files under the root:\n%s", r.stdout)
	}
	ctx := context.Background()
	st, err := inventory.Open(ctx, "sqlite:"+filepath.Join(c.dir, "mica.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.Events(ctx, inventory.EventFilter{Action: "discovery.create"})
	denied := 0
	for _, ev := range evs {
		if ev.Outcome == "denied" && ev.Protocol == "cli" && strings.Contains(string(ev.Details), "not allowed") {
			denied++
		}
	}
	if err != nil || denied != 4 {
		t.Errorf("denied discovery.create events = %d (%v), want 4: %+v", denied, err, evs)
	}
}
