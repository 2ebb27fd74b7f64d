package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"sync"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3/lint"
	_ "github.com/zmap/zlint/v3/lints/rfc" // registers the RFC lints; the CA/B Forum ones are not for a private CA
)

// lintSources are the zlint sources that apply to every MICA profile. The
// CA/Browser Forum sources reject internal names (.test, .internal) and fit
// only publicly-trusted server certificates.
var lintSources = lint.SourceList{lint.RFC5280, lint.RFC5480, lint.RFC5891, lint.RFC8813}

// lintRegistry is built once: filtering walks every registered lint.
var lintRegistry = sync.OnceValues(func() (lint.Registry, error) {
	return lint.GlobalRegistry().Filter(lint.FilterOptions{IncludeSources: lintSources})
})

// lintFinding is one lint that did not pass.
type lintFinding struct {
	Name    string
	Status  lint.LintStatus
	Details string
}

func (f lintFinding) String() string {
	if f.Details == "" {
		return f.Name
	}
	return f.Name + " (" + f.Details + ")"
}

// lintDER runs the RFC lints over a DER certificate and returns errors
// (Error and Fatal) and warnings separately, each sorted by name.
func lintDER(der []byte) (errs, warns []lintFinding, err error) {
	reg, err := lintRegistry()
	if err != nil {
		return nil, nil, fmt.Errorf("building the zlint registry: %w", err)
	}
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("zcrypto cannot parse the certificate: %w", err)
	}
	cfg := reg.GetConfiguration()
	for _, l := range reg.CertificateLints().Lints() {
		res := l.Execute(zc, cfg)
		if res == nil {
			continue
		}
		f := lintFinding{Name: l.Name, Status: res.Status, Details: res.Details}
		switch res.Status {
		case lint.Error, lint.Fatal:
			errs = append(errs, f)
		case lint.Warn:
			warns = append(warns, f)
		}
	}
	byName := func(s []lintFinding) { sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name }) }
	byName(errs)
	byName(warns)
	return errs, warns, nil
}

// lintError turns lint errors into ErrLint naming every failed lint.
func lintError(what string, errs []lintFinding) error {
	names := make([]string, len(errs))
	for i, f := range errs {
		names[i] = f.String()
	}
	return Errorf(ErrLint, "the %s would break RFC rules checked by zlint: %s", what, strings.Join(names, "; "))
}

// lintIssuer is a stand-in for a real issuer: the same subject, key
// identifier, validity and key algorithm, but a throw-away key. A
// certificate signed by it has, byte for byte, the tbsCertificate the real
// issuer would sign, so linting it judges the real certificate without
// spending a real signature (or an HSM operation) on something that may be
// refused.
type lintIssuer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// newLintIssuer makes the stand-in for real. Generating an RSA key is slow,
// so a CA makes this once and keeps it.
func newLintIssuer(real *x509.Certificate) (*lintIssuer, error) {
	key, err := throwAwayKey(real.PublicKey)
	if err != nil {
		return nil, err
	}
	sigAlg, err := signatureAlgorithmFor(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		RawSubject:            real.RawSubject,
		SubjectKeyId:          real.SubjectKeyId,
		NotBefore:             real.NotBefore,
		NotAfter:              real.NotAfter,
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SignatureAlgorithm:    sigAlg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("making the lint issuer: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the lint issuer: %w", err)
	}
	return &lintIssuer{cert: cert, key: key}, nil
}

// throwAwayKey generates a key of the same algorithm and size as pub.
func throwAwayKey(pub crypto.PublicKey) (crypto.Signer, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.GenerateKey(k.Curve, rand.Reader)
	case *rsa.PublicKey:
		return rsa.GenerateKey(rand.Reader, k.N.BitLen())
	case ed25519.PublicKey:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("no throw-away key for issuer key type %T", pub)
}

// lint signs tmpl with the throw-away key, lints the result and returns its
// tbsCertificate (to compare with the real one) and any warnings. Lint
// errors come back as ErrLint naming the lints.
func (li *lintIssuer) lint(what string, tmpl *x509.Certificate) (tbs []byte, warns []lintFinding, err error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, li.cert, tmpl.PublicKey, li.key)
	if err != nil {
		return nil, nil, Wrap(ErrInternal, err, "signing the lint copy failed")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, Wrap(ErrInternal, err, "parsing the lint copy failed")
	}
	errs, warns, err := lintDER(der)
	if err != nil {
		return nil, nil, Wrap(ErrInternal, err, "linting failed to run")
	}
	if len(errs) > 0 {
		return nil, warns, lintError(what, errs)
	}
	return cert.RawTBSCertificate, warns, nil
}
