package ca

import (
	"context"
	"crypto/x509"
	"slices"
	"testing"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// allKeyProfiles are the default profiles with every subject key type
// allowed, so the matrix can cover Ed25519 and P-521 subjects too.
func allKeyProfiles() map[string]Profile {
	ps := DefaultProfiles()
	for n, p := range ps {
		p.KeyTypes = knownKeyTypes
		ps[n] = p
	}
	return ps
}

// profileCSRNames gives, per default profile, names that profile allows.
var profileCSRNames = map[string]struct {
	cn    string
	names []string
}{
	"server": {"www.a.test", []string{"www.a.test", "a.test", "ip:10.0.0.1", "ip:fd00::1"}},
	"client": {"", []string{"svc.a.test", "uri:spiffe://a.test/ns/prod/sa/web", "email:ops@a.test"}},
	"device": {"dev_0042", []string{"uri:urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"}},
}

var wantSigAlg = map[hsm.KeyType]x509.SignatureAlgorithm{
	hsm.ECP256:  x509.ECDSAWithSHA256,
	hsm.ECP384:  x509.ECDSAWithSHA384,
	hsm.RSA2048: x509.SHA256WithRSA,
	hsm.Ed25519: x509.PureEd25519,
}

// TestIssueMatrix issues under every default profile, for every issuer key
// type and subject key type, and checks each certificate in full.
func TestIssueMatrix(t *testing.T) {
	t.Parallel()
	subjects := []string{"EC-P256", "EC-P384", "EC-P521", "RSA-2048", "RSA-3072", "Ed25519"}
	for _, ikt := range []hsm.KeyType{hsm.ECP256, hsm.ECP384, hsm.RSA2048, hsm.Ed25519} {
		t.Run(string(ikt), func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, ikt, func(o *Options) { o.Profiles = allKeyProfiles() })
			checkCAChain(t, env)
			for _, prof := range env.ca.ProfileNames() {
				for _, skt := range subjects {
					t.Run(prof+"/"+skt, func(t *testing.T) {
						n := profileCSRNames[prof]
						csr := makeCSR(t, subjectKey(t, skt), n.cn, n.names...)
						iss, err := env.ca.Issue(context.Background(), Request{CSR: csr, Profile: prof, Requester: "matrix", Protocol: "api"})
						if err != nil {
							t.Fatalf("Issue(%s, %s, %s) = %v", ikt, prof, skt, err)
						}
						checkLeaf(t, env, iss, prof)
						if got := iss.Certificate.SignatureAlgorithm; got != wantSigAlg[ikt] {
							t.Errorf("signature algorithm = %v, want %v", got, wantSigAlg[ikt])
						}
						if iss.Record.KeyType != skt {
							t.Errorf("record key type = %q, want %q", iss.Record.KeyType, skt)
						}
					})
				}
			}
		})
	}
}

// checkLeaf verifies everything a relying party and the inventory rely on.
func checkLeaf(t *testing.T, env *testEnv, iss *Issued, profile string) {
	t.Helper()
	cert := iss.Certificate
	errs, warns, err := lintDER(cert.Raw)
	if err != nil || len(errs) > 0 || len(warns) > 0 {
		t.Errorf("zlint: err=%v errors=%v warnings=%v", err, errs, warns)
	}
	pol := env.ca.profiles[profile]
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(env.ca.Root())
	for _, c := range iss.Chain {
		inter.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: testNow, KeyUsages: pol.eku}); err != nil {
		t.Errorf("Verify = %v", err)
	}
	wrong := x509.ExtKeyUsageCodeSigning
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{wrong}}); err == nil {
		t.Errorf("Verify for codeSigning succeeded, want an EKU error")
	}
	issuer := env.ca.cur().issuerCert
	if len(cert.SubjectKeyId) != 20 {
		t.Errorf("SKI = %x, want 20 bytes", cert.SubjectKeyId)
	}
	if string(cert.AuthorityKeyId) != string(issuer.SubjectKeyId) {
		t.Errorf("AKI = %x, want issuer SKI %x", cert.AuthorityKeyId, issuer.SubjectKeyId)
	}
	id := env.ca.IssuerID()
	if want := []string{testURLs.CRLBase + id + ".crl"}; !slices.Equal(cert.CRLDistributionPoints, want) {
		t.Errorf("CRL DP = %v, want %v", cert.CRLDistributionPoints, want)
	}
	if want := []string{testURLs.OCSP}; !slices.Equal(cert.OCSPServer, want) {
		t.Errorf("OCSP = %v, want %v", cert.OCSPServer, want)
	}
	if want := []string{testURLs.CAIssuersBase + id + ".crt"}; !slices.Equal(cert.IssuingCertificateURL, want) {
		t.Errorf("caIssuers = %v, want %v", cert.IssuingCertificateURL, want)
	}
	if bl := cert.SerialNumber.BitLen(); bl < 64 || len(cert.SerialNumber.Bytes()) != serialLen {
		t.Errorf("serial %x: %d bits, %d octets; want >= 64 bits in %d octets", cert.SerialNumber, bl, len(cert.SerialNumber.Bytes()), serialLen)
	}
	if cert.IsCA || !cert.BasicConstraintsValid {
		t.Errorf("basicConstraints: IsCA=%t valid=%t, want CA:FALSE", cert.IsCA, cert.BasicConstraintsValid)
	}
	if !slices.Equal(cert.ExtKeyUsage, pol.eku) {
		t.Errorf("EKU = %v, want %v", cert.ExtKeyUsage, pol.eku)
	}
	rec, err := env.store.Certificate(context.Background(), id, cert.SerialNumber.Text(16))
	if err != nil {
		t.Fatalf("store has no record: %v", err)
	}
	if rec.State != inventory.StateIssued || string(rec.DER) != string(cert.Raw) {
		t.Errorf("store record state=%s, DER equal=%t; want issued with the returned DER", rec.State, string(rec.DER) == string(cert.Raw))
	}
}

// checkCAChain checks the root and intermediate Init made.
func checkCAChain(t *testing.T, env *testEnv) {
	t.Helper()
	root, inter := env.init.Root, env.init.Issuing
	for _, c := range []*x509.Certificate{root, inter} {
		errs, warns, err := lintDER(c.Raw)
		if err != nil || len(errs) > 0 || len(warns) > 0 {
			t.Errorf("zlint %s: err=%v errors=%v warnings=%v", c.Subject.CommonName, err, errs, warns)
		}
	}
	if !root.IsCA || root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign || len(root.SubjectKeyId) == 0 {
		t.Errorf("root: IsCA=%t KU=%b SKI=%x", root.IsCA, root.KeyUsage, root.SubjectKeyId)
	}
	if !inter.IsCA || inter.MaxPathLen != 0 || !inter.MaxPathLenZero {
		t.Errorf("intermediate: IsCA=%t pathLen=%d zero=%t, want CA with pathLen 0", inter.IsCA, inter.MaxPathLen, inter.MaxPathLenZero)
	}
	if want := x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign; inter.KeyUsage != want {
		t.Errorf("intermediate KU = %b, want %b", inter.KeyUsage, want)
	}
	if string(inter.AuthorityKeyId) != string(root.SubjectKeyId) {
		t.Errorf("intermediate AKI = %x, want root SKI %x", inter.AuthorityKeyId, root.SubjectKeyId)
	}
	rootID := env.init.RootIssuer.ID
	if want := []string{testURLs.CRLBase + rootID + ".crl"}; !slices.Equal(inter.CRLDistributionPoints, want) {
		t.Errorf("intermediate CRL DP = %v, want %v", inter.CRLDistributionPoints, want)
	}
	if want := []string{testURLs.CAIssuersBase + rootID + ".crt"}; !slices.Equal(inter.IssuingCertificateURL, want) {
		t.Errorf("intermediate caIssuers = %v, want %v", inter.IssuingCertificateURL, want)
	}
	if len(inter.OCSPServer) != 0 {
		t.Errorf("intermediate OCSP = %v, want none", inter.OCSPServer)
	}
	if !inter.NotAfter.Before(root.NotAfter) {
		t.Errorf("intermediate ends %v, not before root %v", inter.NotAfter, root.NotAfter)
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		t.Errorf("intermediate not signed by root: %v", err)
	}
}

// TestSerialsUnique issues many certificates and checks the serials differ.
func TestSerialsUnique(t *testing.T) {
	t.Parallel()
	n := 1000
	if testing.Short() {
		n = 100
	}
	env := newTestEnv(t, hsm.ECP256, nil)
	csr := makeCSR(t, subjectKey(t, "EC-P256"), "a.test")
	seen := make(map[string]bool, n)
	for i := range n {
		iss, err := env.ca.Issue(context.Background(), Request{CSR: csr, Profile: "server"})
		if err != nil {
			t.Fatalf("Issue #%d = %v", i, err)
		}
		s := iss.Record.Serial
		if seen[s] {
			t.Fatalf("serial %s issued twice", s)
		}
		seen[s] = true
	}
	if got := env.store.count(inventory.StateIssued); got != n {
		t.Errorf("store holds %d issued, want %d", got, n)
	}
	t.Logf("%d distinct serials", len(seen))
}
