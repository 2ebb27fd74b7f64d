package testtool

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records how a test ended; Fatalf and Skipf stop the goroutine
// as the real ones do.
type fakeTB struct {
	testing.TB
	fatal, skip, log string
}

func (f *fakeTB) Helper()      {}
func (f *fakeTB) Name() string { return "TestFake" }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = format
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = format
	runtime.Goexit()
}
func (f *fakeTB) Logf(format string, args ...any) { f.log = format }

func run(fn func(t testing.TB)) *fakeTB {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

// TestMissingToolFailsWhenRequired: the one rule. A missing tool fails
// the test when MICA_REQUIRE_TOOLS (or CI, or the group's older variable)
// says so, and is otherwise skipped with a message naming the variable
// and logged for the end-of-run summary.
func TestMissingToolFailsWhenRequired(t *testing.T) {
	const tool = "mica-no-such-tool"
	for _, tc := range []struct {
		name, require, ci, legacyVar, legacy string
		group                                string
		wantFail                             bool
	}{
		{"local", "", "", "", "", tool, false},
		{"all required", "1", "", "", "", tool, true},
		{"listed", "openssl," + tool, "", "", "", tool, true},
		{"not listed", "openssl,curl", "", "", "", tool, false},
		{"CI", "", "true", "", "", tool, true},
		{"legacy softhsm", "", "", "MICA_REQUIRE_SOFTHSM", "1", SoftHSM2, true},
		{"legacy acme clients", "", "", "MICA_REQUIRE_ACME_CLIENTS", "1", "certbot", true},
		{"legacy chromium", "", "", "MICA_REQUIRE_CHROMIUM", "1", "chromium", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "skips.log")
			t.Setenv(EnvSkipLog, log)
			t.Setenv(EnvRequire, tc.require)
			t.Setenv("CI", tc.ci)
			for _, v := range []string{"MICA_REQUIRE_SOFTHSM", "MICA_REQUIRE_ACME_CLIENTS", "MICA_REQUIRE_CHROMIUM"} {
				t.Setenv(v, "")
			}
			if tc.legacyVar != "" {
				t.Setenv(tc.legacyVar, tc.legacy)
			}
			f := run(func(tb testing.TB) {
				if tc.group == tool {
					Need(tb, tool)
				} else {
					Missing(tb, tc.group, errors.New("absent"))
				}
			})
			if tc.wantFail {
				if f.fatal == "" || f.skip != "" {
					t.Fatalf("want failure, got skip=%q fatal=%q", f.skip, f.fatal)
				}
				return
			}
			if f.skip == "" || f.fatal != "" || !strings.Contains(f.skip, "SKIPPED") {
				t.Fatalf("want a loud skip, got skip=%q fatal=%q", f.skip, f.fatal)
			}
			b, err := os.ReadFile(log)
			if err != nil || !strings.HasPrefix(string(b), tc.group+"\tinternal/testtool\tTestFake\n") {
				t.Fatalf("skip log = %q, %v", b, err)
			}
			if !strings.Contains(Summary(), tc.group) {
				t.Errorf("Summary() = %q, does not name %s", Summary(), tc.group)
			}
		})
	}
}

func TestNeedFindsTool(t *testing.T) {
	if p := Need(t, "go"); p == "" {
		t.Fatal("Need(go) returned no path")
	}
}

func TestPartialRecordsAndReturns(t *testing.T) {
	t.Setenv(EnvSkipLog, filepath.Join(t.TempDir(), "skips.log"))
	t.Setenv(EnvRequire, "")
	t.Setenv("CI", "")
	returned := false
	f := run(func(tb testing.TB) {
		Partial(tb, PostgreSQL, errors.New("no DSN"))
		returned = true
	})
	if !returned || f.log == "" || f.fatal != "" {
		t.Fatalf("Partial locally: returned %v, log %q, fatal %q", returned, f.log, f.fatal)
	}
	t.Setenv(EnvRequire, "1")
	f = run(func(tb testing.TB) { Partial(tb, PostgreSQL, errors.New("no DSN")) })
	if f.fatal == "" {
		t.Fatal("Partial with the tools required did not fail")
	}
}
