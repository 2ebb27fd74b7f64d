package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestLoopbackResolver: the in-process resolver answers localhost, names
// under .test and .localhost, and --dev-name names (exact and *.suffix)
// with 127.0.0.1 and ::1, and nothing else (a bare suffix is not a name
// under it).
func TestLoopbackResolver(t *testing.T) {
	t.Parallel()
	names := newDevNames([]string{"app.example", "*.internal.", "*.corp"})
	r := loopbackResolver(names)
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"localhost", true},
		{"app.test", true},
		{"a.b.localhost", true},
		{"APP.Test", true},
		{"app.example", true},
		{"x.internal", true},
		{"y.x.corp", true},
		{"test", false},
		{"other.example", false},
		{"internal", false},
		{"mytest", false},
	} {
		if got := names.match(tc.name); got != tc.want {
			t.Errorf("match(%q) = %v, want %v", tc.name, got, tc.want)
		}
		if !tc.want || tc.name == "localhost" { // localhost may come from /etc/hosts
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := r.LookupHost(ctx, tc.name)
		cancel()
		if err != nil {
			t.Errorf("LookupHost(%q): %v", tc.name, err)
			continue
		}
		slices.Sort(addrs)
		if !slices.Equal(addrs, []string{"127.0.0.1", "::1"}) {
			t.Errorf("LookupHost(%q) = %v, want 127.0.0.1 and ::1", tc.name, addrs)
		}
	}
}

// TestDevLocalhostAndDevName: `mica dev` issues for the name localhost
// (refused as "not a valid DNS name" before) and for a name added with
// --dev-name, through lego's http-01, with no DNS server anywhere.
func TestDevLocalhostAndDevName(t *testing.T) {
	requireTool(t, "lego")
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	http01 := freePort(t)
	d := startDev(t, dir, "--http01-port", fmt.Sprint(http01), "--dev-name", "*.internal")
	dirURL := reHTTPS.FindString(d.stdout) + "/acme/default/directory"
	path := t.TempDir()
	for _, name := range []string{"localhost", "svc.internal"} {
		cmd := exec.Command("lego", "--server", dirURL, "--accept-tos", "--email", "dev@a.test", "--path", path,
			"--domains", name, "--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", http01), "run")
		cmd.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+filepath.Join(dir, rootPEM))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("lego for %s: %v\n%s", name, err, out)
			continue
		}
		leaf := readCerts(t, filepath.Join(path, "certificates", name+".crt"))[0]
		if !slices.Contains(leaf.DNSNames, name) {
			t.Errorf("certificate for %s names %v", name, leaf.DNSNames)
		}
	}
}
