//go:build unix

package ca

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// Environment of the crash child process.
const (
	envCrashChild = "MICA_CA_CRASH_CHILD" // set: run TestCrashChild for real
	envCrashDSN   = "MICA_CA_CRASH_DSN"
	envCrashKeys  = "MICA_CA_CRASH_KEYS"
)

// TestCrashKillsProcess runs an issuance in a child process that kills
// itself (MICA_TEST_CRASH_AT) after signing or after committing, and then
// reads the store as a restarted MICA would: a certificate is "issued" only
// if the commit happened, and the child never got to return it.
func TestCrashKillsProcess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		point string
		want  inventory.State
	}{
		{crashAfterSign, inventory.StateRequested},
		{crashAfterCommit, inventory.StateIssued},
	} {
		t.Run(tc.point, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dsn := inventorytest.SQLiteDSN(t)
			st, err := inventory.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			keysURI, pass := hsmtest.SoftKMS(t)
			keys, err := hsm.Open(ctx, hsm.Config{URI: keysURI, Secret: pass})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Init(ctx, InitOptions{Store: st, Keys: keys, Logger: discardLogger()}); err != nil {
				t.Fatal(err)
			}
			_ = keys.Close()
			_ = st.Close()

			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
			cmd.Env = append(os.Environ(), envCrashChild+"=1", envCrashDSN+"="+dsn, envCrashKeys+"="+keysURI, crashEnv+"="+tc.point)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("child did not die: %v\n%s", err, out)
			}
			if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !(ws.Signaled() && ws.Signal() == syscall.SIGKILL) && ws.ExitStatus() != 99 {
				t.Fatalf("child ended with %v, want SIGKILL or exit 99\n%s", err, out)
			}
			if strings.Contains(string(out), "RETURNED") {
				t.Fatalf("child returned a certificate before dying:\n%s", out)
			}

			st, err = inventory.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			certs, err := st.FindCertificates(ctx, inventory.CertFilter{})
			if err != nil || len(certs) != 1 || certs[0].State != tc.want {
				t.Fatalf("store after crash at %s = %+v, %v; want one %s certificate", tc.point, certs, err, tc.want)
			}
		})
	}
}

// TestCrashChild is the child half of TestCrashKillsProcess.
func TestCrashChild(t *testing.T) {
	if os.Getenv(envCrashChild) == "" {
		t.Skip("run by TestCrashKillsProcess")
	}
	ctx := context.Background()
	st, err := inventory.Open(ctx, os.Getenv(envCrashDSN))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := hsm.Open(ctx, hsm.Config{URI: os.Getenv(envCrashKeys), Secret: hsm.NewSecret([]byte(hsmtest.Passphrase))})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Options{Store: st, Keys: keys, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := c.Issue(ctx, Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "a.test"), Profile: "server", Protocol: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RETURNED %s", iss.Record.Serial)
}
