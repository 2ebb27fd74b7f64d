// Package testtool is the one rule for tests that need something outside
// Go: a command (openssl, curl, certbot, lego, chromium, the go tool), the
// SoftHSM2 library or a PostgreSQL server.
//
// When the environment requires the tools (MICA_REQUIRE_TOOLS, set by
// scripts/test.sh and so by .ci/run; or CI set at all), a missing one
// FAILS the test. Otherwise the test is skipped, loudly: the skip message
// names the group and the variable that would have made it a failure, the
// group is appended to the skip log (SkipLog), and the package's TestMain
// (Main) prints a summary of what it skipped.
//
// Why a log file as well: `go test ./...` shows nothing but "ok" for a
// passing package, whatever its TestMain prints, so a summary across
// packages has to be collected outside the test binaries. `task test:short`
// clears the log before the run and prints it after; after a plain
// `go test ./...` run `go run ./internal/testtool/skipped` does the same.
//
// MICA_REQUIRE_TOOLS is "1" (every group) or a comma-separated list of
// groups ("openssl,curl,softhsm2"). The older per-group variables still
// work: MICA_REQUIRE_SOFTHSM=1 (softhsm2, pkcs11-tool),
// MICA_REQUIRE_ACME_CLIENTS (certbot, lego), MICA_REQUIRE_CHROMIUM
// (chromium).
package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// EnvRequire names the variable that turns a missing tool into a failure.
const EnvRequire = "MICA_REQUIRE_TOOLS"

// EnvSkipLog names the variable overriding where skips are logged.
const EnvSkipLog = "MICA_SKIP_LOG"

// Group names for requirements that are not a command on PATH.
const (
	SoftHSM2   = "softhsm2"
	PostgreSQL = "postgresql"
)

// legacy maps a group to the older variable that also requires it.
var legacy = map[string]string{
	SoftHSM2:      "MICA_REQUIRE_SOFTHSM",
	"pkcs11-tool": "MICA_REQUIRE_SOFTHSM",
	"certbot":     "MICA_REQUIRE_ACME_CLIENTS",
	"lego":        "MICA_REQUIRE_ACME_CLIENTS",
	"chromium":    "MICA_REQUIRE_CHROMIUM",
}

// Required reports whether a missing group must fail the test.
func Required(group string) bool {
	if os.Getenv("CI") != "" {
		return true
	}
	switch v := os.Getenv(EnvRequire); v {
	case "":
	case "1", "all", "true":
		return true
	default:
		if slices.Contains(strings.Split(v, ","), group) {
			return true
		}
	}
	if env, ok := legacy[group]; ok {
		if v := os.Getenv(env); v != "" && v != "0" {
			return true
		}
	}
	return false
}

// Need returns the path of the command tool, or fails (tools required)
// or skips loudly (not required) the test when it is not on PATH.
func Need(t testing.TB, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil && tool == "chromium" {
		// Debian installs it as /usr/bin/chromium, others as
		// chromium-browser.
		path, err = exec.LookPath("chromium-browser")
	}
	if err != nil {
		Missing(t, tool, fmt.Errorf("%s is not on PATH (scripts/test.sh installs it)", tool))
	}
	return path
}

// Missing handles a group found unavailable (why says how): it fails the
// test when the group is required and otherwise skips it loudly and logs
// the skip. It does not return.
func Missing(t testing.TB, group string, why error) {
	t.Helper()
	if Required(group) {
		t.Fatalf("%s is required here (%s or CI set): %v", group, EnvRequire, why)
	}
	record(t.Name(), group)
	t.Skipf("SKIPPED: %s unavailable: %v. Set %s=1 to make this a failure; CI does.", group, why, EnvRequire)
}

// Check is Missing when err is not nil, for availability found some other
// way than PATH (a library, a DSN).
func Check(t testing.TB, group string, err error) {
	t.Helper()
	if err != nil {
		Missing(t, group, err)
	}
}

// Partial is for a test that still runs, on less, without group (the
// store suites run on SQLite when PostgreSQL is not configured): it fails
// the test when the group is required and otherwise logs and records
// what was left out, and returns.
func Partial(t testing.TB, group string, why error) {
	t.Helper()
	if Required(group) {
		t.Fatalf("%s is required here (%s or CI set): %v", group, EnvRequire, why)
	}
	record(t.Name(), group)
	t.Logf("SKIPPED the %s part: %v. Set %s=1 to make this a failure; CI does.", group, why, EnvRequire)
}

var (
	mu      sync.Mutex
	skipped = map[string][]string{} // group → tests
)

func record(test, group string) {
	mu.Lock()
	skipped[group] = append(skipped[group], test)
	mu.Unlock()
	pkg := packageDir()
	f, err := os.OpenFile(SkipLog(), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return // the skip message has said it already
	}
	defer f.Close()
	fmt.Fprintf(f, "%s\t%s\t%s\n", group, pkg, test)
}

// packageDir is the test's package directory relative to the module root
// (go test runs a test binary in its package's directory).
func packageDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "?"
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if rel, err := filepath.Rel(dir, wd); err == nil {
				return filepath.ToSlash(rel)
			}
			break
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return filepath.Base(wd)
}

// SkipLog is the file skips are appended to: $MICA_SKIP_LOG, or
// mica-test-skips.log in the system temporary directory.
func SkipLog() string {
	if p := os.Getenv(EnvSkipLog); p != "" {
		return p
	}
	return filepath.Join(os.TempDir(), "mica-test-skips.log")
}

// Summary describes the groups this test binary skipped, "" if none.
func Summary() string {
	mu.Lock()
	defer mu.Unlock()
	if len(skipped) == 0 {
		return ""
	}
	groups := make([]string, 0, len(skipped))
	for g := range skipped {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	var b strings.Builder
	b.WriteString("testtool: SKIPPED tool groups (set " + EnvRequire + "=1 to require them):\n")
	for _, g := range groups {
		fmt.Fprintf(&b, "  %-12s %d test(s): %s\n", g, len(skipped[g]), strings.Join(skipped[g], ", "))
	}
	return b.String()
}

// Main runs the tests and prints Summary to stderr (shown by go test -v,
// on failure, and by go test -json). Use it as a package's TestMain, or
// call Summary from an existing one.
func Main(m *testing.M) {
	code := m.Run()
	if s := Summary(); s != "" {
		fmt.Fprint(os.Stderr, s)
	}
	os.Exit(code)
}
