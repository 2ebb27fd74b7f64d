//go:build cgo

package hsm_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/internal/testtool"
)

// Tests of opening the pkcs11 backend: token selection, PIN handling, URIs
// refused before any module is loaded, the hsmtest helper, and the build
// without cgo.

func TestPKCS11WrongPIN(t *testing.T) {
	needSoftHSM(t)
	ctx := context.Background()
	for _, wrong := range []string{"9999", strings.Repeat("7", 300)} {
		b, err := hsm.Open(ctx, hsm.Config{URI: shared.uri, Secret: hsm.NewSecret([]byte(wrong))})
		if err == nil {
			b.Close()
			t.Fatal("wrong PIN accepted")
		}
		if !errors.Is(err, hsm.ErrWrongPIN) {
			t.Fatalf("want ErrWrongPIN, got %v", err)
		}
		if strings.Contains(err.Error(), wrong) {
			t.Fatalf("error reveals the PIN: %v", err)
		}
	}
	if b, err := hsm.Open(ctx, hsm.Config{URI: shared.uri}); err == nil || errors.Is(err, hsm.ErrWrongPIN) {
		if b != nil {
			b.Close()
		}
		t.Fatalf("missing PIN: want a 'needs its user PIN' error, got %v", err)
	}
	// The failed logins did not lock the token or leave the module half
	// initialised: the right PIN still works.
	b := openP11(t)
	if _, err := b.Keys(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPKCS11BackendURIRefused(t *testing.T) {
	const mod = "module-path=/usr/lib/softhsm/libsofthsm2.so"
	tests := []struct{ name, uri, want string }{
		{"pin-value in query", "pkcs11:" + mod + ";token=mica?pin-value=4242", "PIN"},
		{"pin-value in path", "pkcs11:" + mod + ";token=mica;pin-value=4242", "PIN"},
		{"pin-source", "pkcs11:" + mod + ";token=mica?pin-source=/etc/pin", "PIN"},
		{"pin-prompt", "pkcs11:" + mod + ";token=mica?pin-prompt", "PIN"},
		{"slot-id", "pkcs11:" + mod + ";slot-id=1", "token=<label>"},
		{"slot-id with token", "pkcs11:" + mod + ";token=mica;slot-id=0", "slot-id"},
		{"no token", "pkcs11:" + mod, "token=<label> or serial"},
		{"token and serial", "pkcs11:" + mod + ";token=mica;serial=abc", "use one"},
		{"unknown attribute", "pkcs11:" + mod + ";label=mica", `"label"`},
		{"bad max-sessions", "pkcs11:" + mod + ";token=mica;max-sessions=1", "max-sessions"},
		{"module missing", "pkcs11:module-path=/nonexistent/libnope.so;token=mica", "/nonexistent/libnope.so"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := hsm.Open(context.Background(), hsm.Config{URI: tc.uri, Secret: pin()})
			if err == nil {
				b.Close()
				t.Fatal("want error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "4242") {
				t.Fatalf("error reveals the PIN: %v", err)
			}
		})
	}
}

func TestPKCS11UnknownToken(t *testing.T) {
	needSoftHSM(t)
	b, err := hsm.Open(context.Background(), hsm.Config{URI: hsm.PKCS11URI(shared.module, "no-such-token"), Secret: pin()})
	if err == nil {
		b.Close()
		t.Fatal("opened a token that does not exist")
	}
	if !strings.Contains(err.Error(), `"no-such-token"`) {
		t.Fatalf("error does not name the label: %v", err)
	}
}

func TestPKCS11SelectBySerial(t *testing.T) {
	needSoftHSM(t)
	out, err := exec.Command("softhsm2-util", "--show-slots").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --show-slots: %v\n%s", err, out)
	}
	var serial, last string
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "Serial number":
			last = strings.TrimSpace(v)
		case "Label":
			if strings.TrimSpace(v) == hsmtest.TokenLabel {
				serial = last
			}
		}
	}
	if serial == "" {
		t.Fatalf("no serial for token %s in:\n%s", hsmtest.TokenLabel, out)
	}
	ctx := context.Background()
	b, err := hsm.Open(ctx, hsm.Config{URI: "pkcs11:module-path=" + shared.module + ";serial=" + serial, Secret: pin()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	u, err := b.CreateKey(ctx, uniq("serial"), hsm.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Signer(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	signVerify(t, s)
}

// TestHSMTestSoftHSM exercises the helper other packages use: a fresh token
// of its own, via t.Setenv. It must run while no other pkcs11 backend is
// open, which holds because every test here closes its backends.
func TestHSMTestSoftHSM(t *testing.T) {
	uri, p := hsmtest.SoftHSM(t)
	ctx := context.Background()
	b, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: p})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	keys, err := b.Keys(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("fresh token has keys %v (%v): SOFTHSM2_CONF was not re-read", keys, err)
	}
	u, err := b.CreateKey(ctx, "issuing", hsm.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Signer(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	signVerify(t, s)
}

// TestPKCS11WithoutCgoBuild rebuilds this package's tests with
// CGO_ENABLED=0 and runs TestPKCS11WithoutCgo (nocgo_test.go) there.
func TestPKCS11WithoutCgoBuild(t *testing.T) {
	if !hsm.PKCS11Supported() {
		t.Fatal("PKCS11Supported() = false in a cgo build")
	}
	if testing.Short() {
		t.Skip("builds the package without cgo; skipped with -short")
	}
	// go test puts GOROOT/bin first in PATH.
	goBin := testtool.Need(t, "go")
	var flags []string // -race needs cgo: drop it if it came in through GOFLAGS
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		if f != "-race" {
			flags = append(flags, f)
		}
	}
	cmd := exec.Command(goBin, "test", "-count=1", "-v", "-run", "^TestPKCS11WithoutCgo$", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS="+strings.Join(flags, " "))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestPKCS11WithoutCgo") {
		t.Fatalf("CGO_ENABLED=0 go test: %v\n%s", err, out)
	}
}
