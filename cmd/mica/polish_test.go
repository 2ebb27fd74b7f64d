package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mica-pki/mica/inventory"
)

// TestGlobalFlagsBeforeCommand: --data, --config and --debug work before
// the command as after it; any other flag there is refused with a message
// that says where it goes.
func TestGlobalFlagsBeforeCommand(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t)
	for _, args := range [][]string{
		{"--data", c.dir, "cert", "list"},
		{"--data=" + c.dir, "cert", "list"},
		{"--debug", "--data", c.dir, "cert", "list"},
		{"--config", filepath.Join(c.dir, "mica.yaml"), "cert", "list"},
	} {
		if r := c.run(args...); r.code != 0 {
			t.Errorf("%v", r)
		}
	}
	wantExit(t, c.run("--profile", "server", "cert", "list"), exitUsage, "--profile goes after the command")
	wantExit(t, c.run("--data"), exitUsage, "--data needs a value")
	wantExit(t, c.run("--data", c.dir), exitUsage, "no command given")
}

// TestListenErrorNamesCauseAndFlag: a busy port is reported with the
// operating system's reason and the flag that picks another port.
func TestListenErrorNamesCauseAndFlag(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	wantExit(t, c.run(c.data("serve", "--listen", busy.Addr().String(), "--http-listen", "127.0.0.1:0")...), exitUnavailable,
		"cannot listen on "+busy.Addr().String(), "address already in use", "--listen HOST:PORT")
	wantExit(t, c.run(c.data("serve", "--listen", "127.0.0.1:0", "--http-listen", busy.Addr().String())...), exitUnavailable,
		"address already in use", "--http-listen HOST:PORT")
}

// TestInitCountsRootSignatures: the signatures init makes with the root
// key (its own certificate, the issuing CA's, the first root CRL) show in
// the key inventory, not 0 uses.
func TestInitCountsRootSignatures(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing")
	keys := c.keys()
	if n := keys["root"].Signatures; n < 3 {
		t.Errorf("root key shows %d signatures after init, want at least 3 (self-signature, intermediate, CRL)", n)
	}
	if n := keys["issuing"].Signatures; n < 1 {
		t.Errorf("issuing key shows %d signatures after init, want at least 1 (its CSR)", n)
	}
}

// TestDevRestartSupersedesListenerCert: each start of `mica dev` issues
// the listener a new certificate (its key lives in memory) and marks the
// previous one superseded, so the inventory holds one issued listener
// certificate however often it restarts; a development CA does not warn
// about backups.
func TestDevRestartSupersedesListenerCert(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	for i := 0; i < 3; i++ {
		d := startDev(t, dir)
		if err := d.stop(t); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if s := d.stderr.String(); strings.Contains(s, "backup") {
			t.Errorf("run %d warns about backups:\n%s", i+1, s)
		}
	}
	ctx := context.Background()
	st, err := inventory.Open(ctx, "sqlite:"+filepath.Join(dir, "mica.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	count := func(s inventory.State) int {
		got, err := st.FindCertificates(ctx, inventory.CertFilter{Protocol: "server", States: []inventory.State{s}})
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	if iss, sup := count(inventory.StateIssued), count(inventory.StateSuperseded); iss != 1 || sup != 2 {
		t.Errorf("after 3 starts: %d issued and %d superseded listener certificates, want 1 and 2", iss, sup)
	}

}
