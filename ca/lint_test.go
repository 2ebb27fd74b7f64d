package ca

import (
	"errors"
	"strings"
	"testing"

	"github.com/mica-pki/mica/hsm"
	"github.com/zmap/zlint/v3/lint"
)

func TestLintRegistryRFCOnly(t *testing.T) {
	t.Parallel()
	reg, err := lintRegistry()
	if err != nil {
		t.Fatal(err)
	}
	lints := reg.CertificateLints().Lints()
	if len(lints) < 50 {
		t.Fatalf("registry has %d certificate lints, want the RFC set (> 50)", len(lints))
	}
	for _, l := range lints {
		switch l.Source {
		case lint.RFC5280, lint.RFC5480, lint.RFC5891, lint.RFC8813:
		default:
			t.Errorf("lint %s from source %s in the registry", l.Name, l.Source)
		}
	}
}

// TestLintRefuses: a certificate that breaks an RFC rule is refused with
// ErrLint naming the rule, by a lint that never uses the real key (it runs
// with the HSM refusing every signature).
func TestLintRefuses(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, hsm.ECP256, nil)
	pol := env.ca.profiles["client"]
	chk, err := check(Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "", "email:ops@a.test")}, pol, env.ca.cur().issuerCert, testNow)
	if err != nil {
		t.Fatal(err)
	}
	sn, _ := newSerial()
	tmpl, err := buildLeaf(chk, leafParams{serial: sn, issuer: env.ca.cur().issuerCert, sigAlg: env.ca.cur().sigAlg, profile: pol})
	if err != nil {
		t.Fatal(err)
	}
	// The real key is not involved: with every HSM signature failing,
	// lint still signs its copy (with the stand-in's throw-away key) and
	// passes a good certificate, and refuses a bad one with ErrLint, not
	// with a signing error.
	env.keys.mu.Lock()
	env.keys.failSign = true
	env.keys.mu.Unlock()
	tbs, _, err := env.ca.cur().lintIssuer.lint("certificate", tmpl)
	if err != nil || len(tbs) == 0 {
		t.Fatalf("lint(good certificate) with the HSM refusing to sign = %d bytes, %v; want it linted without the real key", len(tbs), err)
	}
	tmpl.EmailAddresses = []string{"not an address"} // what step 1 would never let through
	_, _, err = env.ca.cur().lintIssuer.lint("certificate", tmpl)
	if !errors.Is(err, ErrLint) || !strings.Contains(UserMessage(err), "e_") {
		t.Fatalf("lint(bad email SAN) = %v, want ErrLint naming the lint", err)
	}
	t.Log(UserMessage(err))
}
