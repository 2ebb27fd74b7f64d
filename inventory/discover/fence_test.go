package discover_test

import (
	"context"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/discover"
)

// fenceLab is a root holding a certificate, a FIFO, a link out of the
// root, a link inside it and the data directory; and a file outside.
type fenceLab struct {
	root, data, outside, cert, fifo, escape, inside string
}

func newFenceLab(t *testing.T) *fenceLab {
	t.Helper()
	base := t.TempDir()
	l := &fenceLab{root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside.pem")}
	l.data = filepath.Join(l.root, "mica-data")
	l.cert = filepath.Join(l.root, "ok.pem")
	l.fifo = filepath.Join(l.root, "pipe.pem")
	l.escape = filepath.Join(l.root, "escape.pem")
	l.inside = filepath.Join(l.root, "inside.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: selfSigned(t, "fence.test", newKey(t))})
	for _, d := range []string{l.root, l.data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{l.cert, l.outside, filepath.Join(l.data, "ca.pem")} {
		if err := os.WriteFile(p, pemData, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(l.fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(l.outside, l.escape); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(l.cert, l.inside); err != nil {
		t.Fatal(err)
	}
	return l
}

// A files job is vetted before it is queued: only regular files and
// directories under the roots, not the data directory, not /proc, not
// through a link leading out.
func TestFenceCheck(t *testing.T) {
	t.Parallel()
	l := newFenceLab(t)
	fence, err := discover.NewFence([]string{l.root}, l.data)
	if err != nil {
		t.Fatal(err)
	}
	wide, err := discover.NewFence([]string{"/"}, l.data) // even a root of "/" keeps the hard limits
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		fence *discover.Fence
		path  string
		ok    bool
		why   string
	}{
		{"certificate under the root", fence, l.cert, true, ""},
		{"the root itself", fence, l.root, true, ""},
		{"link staying inside", fence, l.inside, true, ""},
		{"/proc/self/environ", fence, "/proc/self/environ", false, "system or MICA data"},
		{"/proc/self/environ under a / root", wide, "/proc/self/environ", false, "system or MICA data"},
		{"/sys under a / root", wide, "/sys/kernel", false, "system or MICA data"},
		{"FIFO", fence, l.fifo, false, "not a regular file"},
		{"link escaping the root", fence, l.escape, false, "outside"},
		{"dot-dot out of the root", fence, l.root + "/../outside.pem", false, "outside"},
		{"data directory", fence, l.data, false, "data directory"},
		{"file in the data directory", wide, filepath.Join(l.data, "ca.pem"), false, "data directory"},
		{"relative path", fence, "root/ok.pem", false, "absolute"},
		{"missing file", fence, filepath.Join(l.root, "nope.pem"), false, "no such file"},
		{"no roots: disabled", &discover.Fence{}, l.cert, false, "disabled"},
		{"nil fence: disabled", nil, l.cert, false, "disabled"},
	} {
		err := tc.fence.Check([]string{tc.path})
		if tc.ok != (err == nil) || (err != nil && (!errors.Is(err, discover.ErrPathNotAllowed) || !strings.Contains(err.Error(), tc.why))) {
			t.Errorf("%s: Check(%s) = %v, want ok %t (%q)", tc.name, tc.path, err, tc.ok, tc.why)
		}
	}
	if _, err := discover.NewFence([]string{"relative/dir"}); err == nil {
		t.Error("NewFence accepted a relative root")
	}
}

// The run checks again, on what it opens: a job vetted while the root
// held a certificate reads nothing outside once the file is swapped for
// a link out or a FIFO, and walking a root skips the data directory,
// FIFOs and links (without blocking on the FIFO).
func TestFilesFencedAtRunTime(t *testing.T) {
	t.Parallel()
	l := newFenceLab(t)
	fence, err := discover.NewFence([]string{l.root}, l.data)
	if err != nil {
		t.Fatal(err)
	}
	swapped := filepath.Join(l.root, "swapped.pem")
	if err := os.WriteFile(swapped, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fence.Check([]string{swapped}); err != nil {
		t.Fatal(err)
	}
	os.Remove(swapped)
	if err := os.Symlink(l.outside, swapped); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sink := &recSink{}
	if err := (&discover.Files{Paths: []string{swapped, l.fifo, l.root}, Host: "h", Fence: fence}).Run(ctx, sink); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(sink.found) != 1 || !strings.HasSuffix(sink.found[0].Location, "/root/ok.pem") { // a walk follows no links
		t.Errorf("found %d certificates, want ok.pem only: %+v", len(sink.found), sink.found)
	}
	for _, f := range sink.found {
		if strings.Contains(f.Location, "mica-data") || strings.Contains(f.Location, "escape") || strings.Contains(f.Location, "swapped") {
			t.Errorf("read %s", f.Location)
		}
	}
	for _, p := range []string{swapped, l.fifo} {
		if err := sink.failed["h:"+p]; err == nil || !errors.Is(err, discover.ErrPathNotAllowed) {
			t.Errorf("%s: failure %v, want refused by the fence", p, err)
		}
	}
	// Without a fence (the host agent) only regular files are read: a
	// FIFO named explicitly is refused on its descriptor, not waited on.
	sink = &recSink{}
	if err := (&discover.Files{Paths: []string{l.fifo}, Host: "h"}).Run(ctx, sink); err != nil || sink.failed["h:"+l.fifo] == nil {
		t.Errorf("unfenced FIFO: Run = %v, failures %v; want refused", err, sink.failed)
	}
	if ctx.Err() != nil {
		t.Error("a FIFO blocked the run")
	}
}

// A Runner without file roots refuses every files job up front.
func TestRunnerRefusesFileJobsWithoutRoots(t *testing.T) {
	t.Parallel()
	r := &discover.Runner{}
	if err := r.Check("files", inventory.JobSpec{Paths: []string{"/etc/ssl"}}); !errors.Is(err, discover.ErrPathNotAllowed) {
		t.Errorf("Check(files) without roots = %v, want ErrPathNotAllowed", err)
	}
}
