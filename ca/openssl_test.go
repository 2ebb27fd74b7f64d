package ca

import (
	"context"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/internal/testtool"
)

// TestOpenSSLVerify checks issued chains with a second, independent X.509
// implementation. openssl verify uses the real clock, so the CA here runs
// on it too.
func TestOpenSSLVerify(t *testing.T) {
	t.Parallel()
	openssl := testtool.Need(t, "openssl")
	for _, ikt := range []hsm.KeyType{hsm.ECP256, hsm.RSA2048, hsm.Ed25519} {
		t.Run(string(ikt), func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, ikt, func(o *Options) { o.Now = nil; o.Profiles = allKeyProfiles() })
			dir := t.TempDir()
			write := func(name string, der []byte) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			root := write("root.pem", env.ca.Root().Raw)
			issuing := write("issuing.pem", env.ca.Chain()[0].Raw)
			for _, tc := range []struct{ profile, key, purpose string }{
				{"server", "EC-P256", "sslserver"},
				{"server", "RSA-2048", "sslserver"},
				{"client", "Ed25519", "sslclient"},
				{"device", "EC-P384", "sslclient"},
			} {
				n := profileCSRNames[tc.profile]
				iss, err := env.ca.Issue(context.Background(), Request{CSR: makeCSR(t, subjectKey(t, tc.key), n.cn, n.names...), Profile: tc.profile})
				if err != nil {
					t.Fatalf("Issue(%s/%s) = %v", tc.profile, tc.key, err)
				}
				leaf := write(tc.profile+"-"+tc.key+".pem", iss.Certificate.Raw)
				out, err := exec.Command(openssl, "verify", "-x509_strict", "-purpose", tc.purpose, "-CAfile", root, "-untrusted", issuing, leaf).CombinedOutput()
				if err != nil || !strings.Contains(string(out), ": OK") {
					t.Errorf("openssl verify %s/%s: %v\n%s", tc.profile, tc.key, err, out)
				}
			}
		})
	}
}
