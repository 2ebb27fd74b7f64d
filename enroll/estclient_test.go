package enroll_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mica-pki/mica/internal/testtool"
)

var (
	estclientOnce sync.Once
	estclientPath string
	estclientErr  string
)

// buildEstclient builds globalsign/est v1.0.6's estclient from the tools
// module in testdata/tools (the proxy lists no versions of that module,
// so the tag is required there by name).
func buildEstclient(t *testing.T) string {
	t.Helper()
	testtool.Need(t, "go")
	estclientOnce.Do(func() {
		dir, err := os.MkdirTemp("", "estclient")
		if err != nil {
			estclientErr = err.Error()
			return
		}
		estclientPath = filepath.Join(dir, "estclient")
		cmd := exec.Command("go", "build", "-o", estclientPath, "github.com/globalsign/est/cmd/estclient")
		cmd.Dir = filepath.Join("testdata", "tools")
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			estclientErr = string(out)
		}
	})
	if estclientErr != "" {
		// The one rule for external tools: a failure under
		// MICA_REQUIRE_TOOLS (scripts/test.sh lists estclient) or CI, a
		// loud, logged skip elsewhere (an offline checkout).
		testtool.Missing(t, "estclient", fmt.Errorf("building globalsign/est v1.0.6 estclient: %s", estclientErr))
	}
	return estclientPath
}

// TestEstclient drives the globalsign/est v1.0.6 client: cacerts, enroll
// with a token, reenroll with the enrolled certificate, serverkeygen.
func testEstclient(t *testing.T, b *base) {
	if testing.Short() {
		t.Skip("builds estclient")
	}
	needTools(t, "openssl")
	bin := buildEstclient(t)
	e := newEnv(t, b, nil)
	host := strings.TrimPrefix(e.srv.URL, "https://")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args[:1:1], append([]string{"-server", host, "-explicit", e.rootPEM}, args[1:]...)...)...)
		cmd.Dir = e.dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("estclient %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("cacerts", "-out", "chain.pem")
	if n := strings.Count(sh(t, e.dir, "cat chain.pem"), "BEGIN CERTIFICATE"); n != 2 {
		t.Fatalf("cacerts: %d certificates, want 2", n)
	}
	run("csrattrs")

	sh(t, e.dir, "openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out dev.key")
	user, pass := e.token("default")
	run("enroll", "-user", user, "-pass", pass, "-key", "dev.key", "-cn", "dev1", "-out", "dev.pem")
	if out := sh(t, e.dir, "openssl x509 -in dev.pem -noout -subject"); !strings.Contains(out, "CN = dev1") {
		t.Fatalf("enroll: %s", out)
	}
	run("reenroll", "-certs", "dev.pem", "-key", "dev.key", "-out", "dev2.pem")
	oldSerial := sh(t, e.dir, "openssl x509 -in dev.pem -noout -serial")
	newSerial := sh(t, e.dir, "openssl x509 -in dev2.pem -noout -serial")
	if oldSerial == newSerial {
		t.Fatal("reenroll returned the same certificate")
	}

	user, pass = e.token("default")
	sh(t, e.dir, "openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out csr.key")
	run("serverkeygen", "-user", user, "-pass", pass, "-key", "csr.key", "-cn", "dev3", "-out", "dev3.pem", "-keyout", "dev3.key")
	if cmp := sh(t, e.dir, "openssl x509 -in dev3.pem -noout -pubkey; echo SPLIT; openssl pkey -in dev3.key -pubout"); func() bool {
		parts := strings.Split(cmp, "SPLIT\n")
		return len(parts) != 2 || parts[0] != parts[1]
	}() {
		t.Fatalf("serverkeygen key does not match certificate:\n%s", cmp)
	}
}
