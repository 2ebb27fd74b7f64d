package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/mica-pki/mica/hsm"
)

// IntermediateOptions configure SignIntermediate.
type IntermediateOptions struct {
	// Subject of the intermediate; empty means the CSR's CN and first O
	// (nothing else is taken from the CSR).
	Subject Subject
	// RootID is the root's issuer ID: the intermediate's CRL distribution
	// point and caIssuers URL name the root's CRL and certificate.
	RootID string
	URLs   URLs
	// Validity defaults to DefaultIssuingValidity; the intermediate must end
	// before the root does.
	Validity time.Duration
	Now      func() time.Time
}

// SignIntermediate signs an issuing CA certificate for the key in csr with
// the root key, e.g. in a key ceremony with an offline root. The result has
// pathLen 0, keyUsage digitalSignature, keyCertSign and cRLSign, SKI and
// AKI, and points at the root's CRL and certificate; it has no OCSP URL
// (roots do not run OCSP). It is linted before the root key signs and
// checked after. Recording it as an issuer is the caller's job.
func SignIntermediate(ctx context.Context, rootSigner crypto.Signer, rootCert *x509.Certificate, csr []byte, opts IntermediateOptions) (*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, Wrap(ErrUnavailable, err, "cancelled")
	}
	if rootCert == nil || !rootCert.IsCA || rootCert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, Errorf(ErrConfig, "the signing certificate is not a CA certificate with keyCertSign")
	}
	if !samePublicKey(rootCert.PublicKey, rootSigner.Public()) {
		return nil, Errorf(ErrConfig, "the signing key does not match the certificate %q", rootCert.Subject.CommonName)
	}
	if opts.RootID == "" && (opts.URLs.CRLBase != "" || opts.URLs.CAIssuersBase != "") {
		return nil, Errorf(ErrConfig, "RootID is required to write the root's CRL and certificate URLs")
	}
	sigAlg, err := signatureAlgorithmFor(rootCert.PublicKey)
	if err != nil {
		return nil, err
	}

	req, err := parseCSR(csr)
	if err != nil {
		return nil, err
	}
	kt, err := keyTypeOf(req.PublicKey)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(hsm.KeyTypes, hsm.KeyType(kt)) {
		return nil, Errorf(ErrWeakKey, "%s is not a CA key type (want one of %v)", kt, hsm.KeyTypes)
	}
	if err := verifyCSRSignature(req); err != nil {
		return nil, err
	}

	subj := opts.Subject
	if subj.CommonName == "" {
		subj.CommonName = req.Subject.CommonName
		if len(req.Subject.Organization) > 0 {
			subj.Organization = req.Subject.Organization[0]
		}
	}
	if subj.CommonName == "" {
		return nil, Errorf(ErrBadCSR, "the CSR has no common name and no subject was given")
	}

	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	validity := opts.Validity
	if validity == 0 {
		validity = DefaultIssuingValidity
	}
	nb := now().UTC().Truncate(time.Second).Add(-caBackdate)
	if nb.Before(rootCert.NotBefore) {
		nb = rootCert.NotBefore
	}
	na := nb.Add(validity)
	if !na.Before(rootCert.NotAfter) {
		return nil, Errorf(ErrLifetime, "the intermediate would end on %s, not before the root's notAfter %s",
			na.Format(time.RFC3339), rootCert.NotAfter.UTC().Format(time.RFC3339))
	}

	sn, err := newSerial()
	if err != nil {
		return nil, Wrap(ErrInternal, err, "drawing a serial number failed")
	}
	ski, err := subjectKeyID(req.PublicKey)
	if err != nil {
		return nil, Wrap(ErrInternal, err, "computing the key identifier failed")
	}
	urls := urlsFor(opts.URLs, opts.RootID, false)
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               subj.name(),
		NotBefore:             nb,
		NotAfter:              na,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          ski,
		AuthorityKeyId:        rootCert.SubjectKeyId,
		CRLDistributionPoints: urls.crl,
		IssuingCertificateURL: urls.caIssuers,
		SignatureAlgorithm:    sigAlg,
		PublicKey:             req.PublicKey,
	}

	// Same discipline as for leaves: lint a throw-away copy, then sign once
	// with the real key and check it signed exactly that.
	li, err := newLintIssuer(rootCert)
	if err != nil {
		return nil, Wrap(ErrInternal, err, "cannot prepare the lint issuer")
	}
	tbs, _, err := li.lint("intermediate certificate", tmpl)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, rootCert, req.PublicKey, rootSigner)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "the root key could not sign the intermediate")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, Wrap(ErrInternal, err, "the signed intermediate does not parse")
	}
	if !bytes.Equal(cert.RawTBSCertificate, tbs) {
		return nil, Errorf(ErrInternal, "the signed intermediate differs from the linted one")
	}
	if err := cert.CheckSignatureFrom(rootCert); err != nil {
		return nil, Wrap(ErrInternal, err, fmt.Sprintf("the root signature on %q does not verify", subj.CommonName))
	}
	return cert, nil
}
