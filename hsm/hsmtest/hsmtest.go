// Package hsmtest gives tests in any package a real key backend: a fresh
// SoftHSM2 token, or a softkms directory, in a temporary directory.
//
// SoftHSM2 reads SOFTHSM2_CONF once, when the module is initialised, and the
// variable is process-wide. So a test using SoftHSM must not call t.Parallel
// (t.Setenv enforces that by panicking), must Close every hsm.Backend it
// opened before the test ends, and no other pkcs11 Backend on the same module
// may be open while it runs, or the module keeps the previous configuration.
//
// When SoftHSM2 is not installed, or the test binary was built without cgo
// and so has no PKCS#11 support, the test is skipped, unless the environment
// variable CI is set or MICA_REQUIRE_SOFTHSM=1, in which case it fails: CI
// must not pass by silently skipping every HSM test.
package hsmtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/internal/testtool"
)

// Fixed test credentials. They only ever protect throw-away tokens.
const (
	TokenLabel = "mica"
	SOPIN      = "12345678"
	UserPIN    = "1234"
	Passphrase = "correct horse battery staple"
)

// modulePaths are where distributions install the SoftHSM2 module.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",
}

// Module returns the SoftHSM2 module path (MICA_SOFTHSM_MODULE overrides the
// search), or an error saying what is missing.
func Module() (string, error) {
	if m := os.Getenv("MICA_SOFTHSM_MODULE"); m != "" {
		if _, err := os.Stat(m); err != nil {
			return "", fmt.Errorf("MICA_SOFTHSM_MODULE: %w", err)
		}
		return m, nil
	}
	for _, m := range modulePaths {
		if _, err := os.Stat(m); err == nil {
			return m, nil
		}
	}
	return "", errors.New("libsofthsm2.so not found (apt-get install softhsm2)")
}

// Available reports why SoftHSM2 cannot be used here, or nil.
func Available() error {
	if !hsm.PKCS11Supported() {
		return errors.New("this test binary was built without cgo (CGO_ENABLED=0), so it has no PKCS#11 support")
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return errors.New("softhsm2-util not found (apt-get install softhsm2)")
	}
	_, err := Module()
	return err
}

// Required reports whether a missing SoftHSM2 must fail tests instead of
// skipping them.
func Required() bool {
	return testtool.Required(testtool.SoftHSM2)
}

// InitToken creates a SoftHSM2 configuration and token store under dir and
// initialises one token labelled label with SOPIN and UserPIN. It returns
// the configuration file path for SOFTHSM2_CONF; it does not set the
// variable, so TestMain can use it with os.Setenv and tests with t.Setenv.
func InitToken(dir, label string) (conf string, err error) {
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", err
	}
	conf = filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", err
	}
	// --free puts the token on a random slot id: hence selection by label.
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SOPIN, "--pin", UserPIN)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("softhsm2-util --init-token: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return conf, nil
}

// skipOrFail stops the test because SoftHSM2 is unavailable.
func skipOrFail(t testing.TB, why error) {
	t.Helper()
	testtool.Missing(t, testtool.SoftHSM2, why)
}

// SoftHSM creates a fresh token labelled TokenLabel in t.TempDir(), points
// SOFTHSM2_CONF at it for the rest of the test, and returns the backend URI
// and user PIN for hsm.Open. See the package doc for the rules.
func SoftHSM(t testing.TB) (backendURI string, pin hsm.Secret) {
	t.Helper()
	if err := Available(); err != nil {
		skipOrFail(t, err)
	}
	module, _ := Module()
	conf, err := InitToken(t.TempDir(), TokenLabel)
	if err != nil {
		t.Fatalf("creating SoftHSM2 token: %v", err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	return hsm.PKCS11URI(module, TokenLabel), hsm.NewSecret([]byte(UserPIN))
}

// SoftKMS returns a softkms backend URI for an empty directory in
// t.TempDir(), and its passphrase. Tests using it may run in parallel.
func SoftKMS(t testing.TB) (uri string, pass hsm.Secret) {
	t.Helper()
	return hsm.SoftKMSURI(filepath.Join(t.TempDir(), "keys")), hsm.NewSecret([]byte(Passphrase))
}
