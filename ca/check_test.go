package ca

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// craftCSR builds a CSR whose subject key has the given algorithm,
// parameters and key bits, with a dummy signature. It is for keys Go
// cannot generate or sign with (unknown curves, DSA).
func craftCSR(t testing.TB, alg asn1.ObjectIdentifier, params []byte, keyBits []byte) []byte {
	t.Helper()
	subject, err := asn1.Marshal(pkix.Name{CommonName: "a.test"}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	type spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	type tbs struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  spki
		Attributes []asn1.RawValue `asn1:"tag:0"`
	}
	type csr struct {
		TBS    tbs
		SigAlg pkix.AlgorithmIdentifier
		Sig    asn1.BitString
	}
	der, err := asn1.Marshal(csr{
		TBS: tbs{
			Subject: asn1.RawValue{FullBytes: subject},
			PublicKey: spki{
				Algorithm: pkix.AlgorithmIdentifier{Algorithm: alg, Parameters: asn1.RawValue{FullBytes: params}},
				PublicKey: asn1.BitString{Bytes: keyBits, BitLength: 8 * len(keyBits)},
			},
			Attributes: []asn1.RawValue{},
		},
		SigAlg: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}},
		Sig:    asn1.BitString{Bytes: []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}, BitLength: 64},
	})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tableProfiles adds restricted profiles to the defaults.
func tableProfiles() map[string]Profile {
	ps := DefaultProfiles()
	ps["corp"] = Profile{
		DNS: []string{"*.corp.test"}, IPRanges: []string{"10.0.0.0/8"},
		ExtKeyUsage: []string{"serverAuth"}, MaxLifetime: 30 * day, DefaultLifetime: 7 * day,
	}
	ps["long"] = Profile{
		DNS: []string{"*"}, ExtKeyUsage: []string{"serverAuth"}, MaxLifetime: 20 * 365 * day,
	}
	return ps
}

func TestIssueRefusals(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, hsm.ECP256, func(o *Options) { o.Profiles = tableProfiles() })
	ctx := context.Background()
	p256 := subjectKey(t, "EC-P256")
	good := makeCSR(t, p256, "a.test", "a.test")

	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-3] ^= 0xff // inside the signature value

	ecPoint := append([]byte{4}, make([]byte, 64)...)
	secp256k1 := craftCSR(t, oidPublicKeyEC, mustMarshal(t, asn1.ObjectIdentifier{1, 3, 132, 0, 10}), ecPoint)
	type dsaParams struct{ P, Q, G *big.Int }
	dsaCSR := craftCSR(t, oidPublicKeyDSA,
		mustMarshal(t, dsaParams{big.NewInt(23), big.NewInt(11), big.NewInt(4)}), mustMarshal(t, big.NewInt(8)))
	x25519 := craftCSR(t, asn1.ObjectIdentifier{1, 3, 101, 110}, nil, make([]byte, 32))

	issuerEnd := env.ca.cur().issuerCert.NotAfter

	tests := []struct {
		name    string
		req     Request
		kind    error
		wantMsg string
	}{
		{"empty", Request{CSR: nil}, ErrBadCSR, "CSR is empty"},
		{"not DER or PEM", Request{CSR: []byte("hello, CA")}, ErrBadCSR, "neither DER"},
		{"malformed DER", Request{CSR: []byte{0x30, 0x03, 0x02, 0x01}}, ErrBadCSR, "not a valid PKCS#10"},
		{"trailing data", Request{CSR: append(append([]byte(nil), good...), 0, 0)}, ErrBadCSR, "trailing data"},
		{"PEM base64 garbage", Request{CSR: []byte("-----BEGIN CERTIFICATE REQUEST-----\n!!not*base64!!\n-----END CERTIFICATE REQUEST-----\n")}, ErrBadCSR, "PEM is malformed"},
		{"PEM wrong type", Request{CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good})}, ErrBadCSR, `"CERTIFICATE"`},
		{"PEM trailing data", Request{CSR: append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: good}), "junk"...)}, ErrBadCSR, "trailing data after the CSR PEM"},
		{"bad signature", Request{CSR: tampered}, ErrBadCSR, "CSR signature does not verify"},
		{"RSA-1024", Request{CSR: makeCSR(t, subjectKey(t, "RSA-1024"), "a.test")}, ErrWeakKey, "RSA key of 1024 bits is below the profile minimum of 2048"},
		{"P-224", Request{CSR: makeCSR(t, subjectKey(t, "EC-P224"), "a.test")}, ErrWeakKey, "P-224"},
		{"P-521 not listed", Request{CSR: makeCSR(t, subjectKey(t, "EC-P521"), "a.test")}, ErrWeakKey, "EC-P521 keys are not allowed by profile server"},
		{"unknown curve", Request{CSR: secp256k1}, ErrWeakKey, "elliptic curve secp256k1 is not supported"},
		{"DSA", Request{CSR: dsaCSR}, ErrWeakKey, "DSA keys are not allowed"},
		{"X25519", Request{CSR: x25519}, ErrWeakKey, "X25519"},
		{"Ed25519 not allowed", Request{CSR: makeCSR(t, subjectKey(t, "Ed25519"), "a.test")}, ErrWeakKey, "Ed25519 keys are not allowed by profile server"},
		{"name outside profile", Request{Profile: "corp", CSR: makeCSR(t, p256, "", "www.corp.test", "evil.example")}, ErrPolicy, `name "evil.example" is not allowed by profile corp`},
		{"CN outside profile", Request{Profile: "corp", CSR: makeCSR(t, p256, "evil.example", "www.corp.test")}, ErrPolicy, `name "evil.example" is not allowed by profile corp`},
		{"zone apex outside *.corp.test", Request{Profile: "corp", CSR: makeCSR(t, p256, "", "corp.test")}, ErrPolicy, `name "corp.test" is not allowed`},
		{"IP outside ranges", Request{Profile: "corp", CSR: makeCSR(t, p256, "", "a.corp.test", "ip:192.168.1.1")}, ErrPolicy, `IP address "192.168.1.1" is not allowed by profile corp`},
		{"CN-only not allowed", Request{CSR: makeCSR(t, p256, "dev_1")}, ErrPolicy, `name "dev_1" is not allowed by profile server`},
		{"invalid DNS syntax", Request{CSR: makeCSR(t, p256, "", "bad_name.test")}, ErrBadCSR, `DNS name "bad_name.test" in the CSR is invalid`},
		{"empty label", Request{CSR: makeCSR(t, p256, "", "a..test")}, ErrBadCSR, "empty label"},
		{"bad punycode", Request{CSR: makeCSR(t, p256, "", "xn--zz-.test")}, ErrBadCSR, "hyphen"},
		{"no names", Request{CSR: makeCSR(t, p256, "")}, ErrPolicy, "names nothing"},
		{"lifetime over cap", Request{CSR: good, NotAfter: testNow.Add(400 * day)}, ErrLifetime, "exceeds the maximum of 397d for profile server"},
		{"notAfter before notBefore", Request{CSR: good, NotBefore: testNow.Add(day), NotAfter: testNow}, ErrLifetime, "is not after notBefore"},
		{"backdated too far", Request{CSR: good, NotBefore: testNow.Add(-time.Hour)}, ErrLifetime, "earlier than now minus the profile's backdate of 1m"},
		{"beyond issuer", Request{Profile: "long", CSR: good, NotAfter: issuerEnd.Add(day)}, ErrLifetime, "after the issuing CA's notAfter"},
		{"unknown profile", Request{Profile: "nope", CSR: good}, ErrUnknownProfile, `unknown profile "nope" (known: client, corp, device, long, server)`},
		{"unauthorised extra name", Request{CSR: makeCSR(t, p256, "", "a.test", "b.test"), Identifiers: []string{"dns:a.test"}}, ErrPolicy, `"dns:b.test" in the CSR is not among the authorised identifiers`},
		{"authorised name missing", Request{CSR: makeCSR(t, p256, "", "a.test"), Identifiers: []string{"dns:a.test", "dns:c.test"}}, ErrPolicy, `"dns:c.test" is missing from the CSR`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			if req.Profile == "" {
				req.Profile = "server"
			}
			req.Requester, req.Protocol = "tester-"+tc.name, "api"
			got, err := env.ca.Issue(ctx, req)
			if got != nil {
				t.Fatalf("Issue(%s) returned a certificate", tc.name)
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("Issue(%s) = %v, want kind %v", tc.name, err, tc.kind)
			}
			if msg := UserMessage(err); !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("Issue(%s) message = %q, want it to contain %q", tc.name, msg, tc.wantMsg)
			}
			denied := false
			for _, e := range env.store.eventsWith("cert.issue", "denied") {
				if e.Actor == req.Requester && strings.Contains(string(e.Details), "reason") {
					denied = true
				}
			}
			if !denied {
				t.Errorf("Issue(%s): no denied audit event", tc.name)
			}
		})
	}
	if n := env.store.count(inventory.StateIssued) + env.store.count(inventory.StateRequested); n != 0 {
		t.Errorf("store holds %d issued/requested certificates after refusals, want 0", n)
	}
}

// TestIssueNames covers name normalisation and CN promotion.
func TestIssueNames(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, hsm.ECP256, func(o *Options) { o.Profiles = tableProfiles() })
	ctx := context.Background()
	k := subjectKey(t, "EC-P256")
	tests := []struct {
		name, profile string
		csr           []byte
		ids           []string
		wantCN        string
		wantSANs      []string
	}{
		{"CN promoted", "server", makeCSR(t, k, "WWW.A.test"), nil, "www.a.test", []string{"dns:www.a.test"}},
		{"upper case SANs", "server", makeCSR(t, k, "", "B.Test", "ip:10.1.2.3"), nil, "", []string{"dns:b.test", "ip:10.1.2.3"}},
		{"CN among SANs", "server", makeCSR(t, k, "a.test", "a.test", "b.test"), nil, "a.test", []string{"dns:a.test", "dns:b.test"}},
		{"IP CN promoted", "server", makeCSR(t, k, "10.9.9.9"), nil, "10.9.9.9", []string{"ip:10.9.9.9"}},
		{"device CN-only", "device", makeCSR(t, k, "dev_1"), nil, "dev_1", nil},
		{"device single label", "device", makeCSR(t, k, "dev1"), nil, "dev1", []string{"dns:dev1"}},
		{"wildcard under corp", "corp", makeCSR(t, k, "", "*.a.corp.test"), nil, "", []string{"dns:*.a.corp.test"}},
		{"authorised set", "server", makeCSR(t, k, "A.test", "b.test"), []string{"dns:b.test", "DNS:a.test"}, "a.test", []string{"dns:b.test", "dns:a.test"}},
		{"authorised cn", "device", makeCSR(t, k, "dev_2", "uri:spiffe://corp.test/dev2"), []string{"uri:spiffe://corp.test/dev2", "cn:dev_2"}, "dev_2", []string{"uri:spiffe://corp.test/dev2"}},
		{"client email", "client", makeCSR(t, k, "", "email:Bob@Example.TEST"), nil, "", []string{"email:Bob@example.test"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := env.ca.Issue(ctx, Request{CSR: tc.csr, Profile: tc.profile, Identifiers: tc.ids, Requester: "t"})
			if err != nil {
				t.Fatalf("Issue(%s) = %v", tc.name, err)
			}
			if got := iss.Certificate.Subject.CommonName; got != tc.wantCN {
				t.Errorf("Issue(%s) CN = %q, want %q", tc.name, got, tc.wantCN)
			}
			if got := strings.Join(iss.Record.SANs, ","); got != strings.Join(tc.wantSANs, ",") {
				t.Errorf("Issue(%s) SANs = %q, want %q", tc.name, got, strings.Join(tc.wantSANs, ","))
			}
			if len(iss.Certificate.Subject.Names) > 1 {
				t.Errorf("Issue(%s) subject = %v, want CN only", tc.name, iss.Certificate.Subject)
			}
		})
	}
}

// TestSubjectNotCopied: only the CN is taken from the CSR subject.
func TestSubjectNotCopied(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, hsm.ECP256, nil)
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a.test", Organization: []string{"Evil Corp"}, Country: []string{"XX"}}}
	der, err := x509.CreateCertificateRequest(nil, tmpl, subjectKey(t, "EC-P256"))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := env.ca.Issue(context.Background(), Request{CSR: der, Profile: "server"})
	if err != nil {
		t.Fatal(err)
	}
	if got := iss.Certificate.Subject.String(); got != "CN=a.test" {
		t.Errorf("subject = %q, want CN=a.test", got)
	}
}
