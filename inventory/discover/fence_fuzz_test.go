package discover_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mica-pki/mica/inventory/discover"
)

// FuzzFenceCheck: whatever path a job names, a path the fence accepts
// resolves (links followed) to the root or below it, never into the data
// directory, and names a regular file or a directory.
func FuzzFenceCheck(f *testing.F) {
	base := f.TempDir()
	root := filepath.Join(base, "root")
	data := filepath.Join(root, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		f.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "ok.pem"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(base, "out.pem"), []byte("x"), 0o600)
	os.Symlink(filepath.Join(base, "out.pem"), filepath.Join(root, "out-link"))
	os.Symlink("../root/ok.pem", filepath.Join(root, "in-link"))
	os.Symlink("data", filepath.Join(root, "data-link"))
	os.Symlink("/proc/self", filepath.Join(root, "proc-link"))
	fence, err := discover.NewFence([]string{root}, data)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"ok.pem", "out-link", "in-link", "data-link/x", "proc-link/environ", "../out.pem", "./data/../ok.pem", "", "//ok.pem"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		p := root + "/" + rel
		if strings.HasPrefix(rel, "/") {
			p = rel // absolute paths anywhere
		}
		if fence.Check([]string{p}) != nil {
			return
		}
		real, err := filepath.EvalSymlinks(filepath.Clean(p))
		if err != nil {
			t.Fatalf("Check(%q) accepted a path that does not resolve: %v", p, err)
		}
		if real != root && !strings.HasPrefix(real, root+"/") {
			t.Fatalf("Check(%q) accepted %s, outside the root %s", p, real, root)
		}
		if real == data || strings.HasPrefix(real, data+"/") {
			t.Fatalf("Check(%q) accepted %s, in the data directory", p, real)
		}
		if fi, err := os.Lstat(real); err != nil || (!fi.Mode().IsRegular() && !fi.IsDir()) {
			t.Fatalf("Check(%q) accepted %s: %v %v", p, real, fi, err)
		}
	})
}
