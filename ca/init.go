package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// Default CA validities: long enough that rotation is a planned event,
// short enough that it happens within a key's cryptoperiod (SP 800-57).
const (
	DefaultRootValidity    = 3652 * day // 10 years
	DefaultIssuingValidity = 1826 * day // 5 years
	caBackdate             = time.Hour  // CA certs: generous clock-skew allowance
)

// Subject names a CA. Only CN and O are used: a CA name is for people.
type Subject struct {
	CommonName   string `yaml:"common_name" json:"common_name"`
	Organization string `yaml:"organization,omitempty" json:"organization,omitempty"`
}

func (s Subject) name() pkix.Name {
	n := pkix.Name{CommonName: s.CommonName}
	if s.Organization != "" {
		n.Organization = []string{s.Organization}
	}
	return n
}

// InitOptions configure Init. Zero values get the defaults noted.
type InitOptions struct {
	Store    InitStore
	RootKeys hsm.Backend // where the root key is generated; nil means Keys
	Keys     hsm.Backend // where the issuing key is generated

	RootKeyType    hsm.KeyType // default EC-P384
	IssuingKeyType hsm.KeyType // default EC-P256
	RootSubject    Subject     // default CN "MICA Root CA {year}"
	IssuingSubject Subject     // default CN "MICA Issuing CA {year}"
	RootValidity   time.Duration
	// IssuingValidity defaults to 5 years and must end before the root does.
	IssuingValidity time.Duration
	// RootID and IssuingID are the short, stable names used in URLs
	// (/crl/{id}.crl) and as key names in the backends. Defaults:
	// "root-{year}" and "issuing-{year}", the year of Now.
	RootID, IssuingID string
	// OfflineRoot leaves the root's key URI out of the store: the operator
	// moves the key (InitResult.RootKeyURI) offline, and MICA never
	// expects to use it; new intermediates are signed by SignIntermediate
	// in a key ceremony.
	OfflineRoot bool
	// RootCRLValidity is the validity of the root's first CRL, signed here
	// so the CRL every intermediate points at exists from the start.
	// Default: DefaultCRLValidity for an online root (the revocation
	// worker re-signs it), DefaultOfflineRootCRLValidity for an offline one.
	RootCRLValidity time.Duration
	// CRLs records that CRL; nil means Store when it is a RootCRLStore
	// (*inventory.Store is), else no CRL is stored.
	CRLs   RootCRLStore
	URLs   URLs
	Now    func() time.Time
	Actor  string // who ran init, for the audit log
	Source string // from where (host, terminal)
	Logger *slog.Logger
}

// InitResult describes the new hierarchy.
type InitResult struct {
	Root, Issuing             *x509.Certificate
	RootIssuer, IssuingIssuer inventory.Issuer
	// RootKeyURI is where the root key is, always set. With OfflineRoot it
	// is recorded nowhere else: the operator must note it and move the key.
	RootKeyURI    string
	IssuingKeyURI string
	RootOffline   bool
}

// Init creates a self-signed root CA and an issuing intermediate signed by
// it, each key generated inside its backend, and records both issuers with
// "ca.init" events. It refuses if either ID is already in the store.
func Init(ctx context.Context, o InitOptions) (*InitResult, error) {
	rootShared := o.RootKeys == nil // before defaults fill it in
	if err := o.defaults(); err != nil {
		return nil, err
	}
	now := o.Now().UTC().Truncate(time.Second)
	existing, err := o.Store.Issuers(ctx)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "cannot read the issuers from the store")
	}
	for _, is := range existing {
		if is.ID == o.RootID || is.ID == o.IssuingID {
			return nil, Errorf(ErrConfig, "issuer %s already exists in the store; choose another ID", is.ID)
		}
	}

	rootURI, rootSigner, err := createKey(ctx, o.RootKeys, o.RootID, o.RootKeyType)
	if err != nil {
		return nil, err
	}
	rootStart := now.Add(-caBackdate)
	root, err := selfSign(rootSigner, o.RootSubject, rootStart, rootStart.Add(o.RootValidity))
	if err != nil {
		return nil, err
	}

	issURI, issSigner, err := createKey(ctx, o.Keys, o.IssuingID, o.IssuingKeyType)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: o.IssuingSubject.name()}, issSigner)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, fmt.Sprintf("the issuing key %s could not sign its CSR", redactURI(issURI)))
	}
	issuing, err := SignIntermediate(ctx, rootSigner, root, csr, IntermediateOptions{
		Subject:  o.IssuingSubject,
		RootID:   o.RootID,
		URLs:     o.URLs,
		Validity: o.IssuingValidity,
		Now:      func() time.Time { return now },
	})
	if err != nil {
		return nil, err
	}

	res := &InitResult{Root: root, Issuing: issuing, RootKeyURI: rootURI, IssuingKeyURI: issURI, RootOffline: o.OfflineRoot}
	res.RootIssuer = issuerRecord(o.RootID, "", root, rootURI, now)
	if o.OfflineRoot {
		res.RootIssuer.KeyURI = ""
	}
	res.IssuingIssuer = issuerRecord(o.IssuingID, o.RootID, issuing, issURI, now)
	for _, is := range []*inventory.Issuer{&res.RootIssuer, &res.IssuingIssuer} {
		details, _ := json.Marshal(map[string]any{
			"subject": is.Subject, "key_type": is.KeyType, "key_offline": is.KeyURI == "",
			"not_after": is.NotAfter, "parent": is.ParentID,
		})
		ev := inventory.Event{
			Time: now, Actor: o.Actor, Action: "ca.init", Protocol: "cli", Source: o.Source,
			Object: "issuer:" + is.ID, Outcome: "ok", Details: details,
		}
		if err := o.Store.PutIssuer(ctx, is, ev); err != nil {
			if errors.Is(err, inventory.ErrDuplicate) {
				return nil, Wrap(ErrConfig, err, fmt.Sprintf("issuer %s already exists in the store; choose another ID", is.ID))
			}
			return nil, Wrap(ErrUnavailable, err, fmt.Sprintf("recording issuer %s failed", is.ID))
		}
	}
	if o.CRLs != nil {
		if err := storeRootCRL(ctx, o.CRLs, o.RootID, root, rootSigner, now, o.RootCRLValidity); err != nil {
			return nil, err
		}
	}
	if o.OfflineRoot && rootShared {
		o.Logger.Warn("offline root requested but its key was generated in the online backend: move it out",
			"root_key", redactURI(rootURI))
	}
	o.Logger.Info("CA hierarchy created", "root", o.RootID, "issuing", o.IssuingID,
		"root_key", redactURI(rootURI), "root_offline", o.OfflineRoot, "issuing_key", redactURI(issURI))
	return res, nil
}

func (o *InitOptions) defaults() error {
	if o.Store == nil {
		return Errorf(ErrConfig, "init: no store")
	}
	if o.Keys == nil {
		return Errorf(ErrConfig, "init: no key backend for the issuing key")
	}
	if o.RootKeys == nil {
		o.RootKeys = o.Keys
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Actor == "" {
		o.Actor = "operator"
	}
	year := o.Now().UTC().Year()
	if o.RootKeyType == "" {
		o.RootKeyType = hsm.ECP384
	}
	if o.IssuingKeyType == "" {
		o.IssuingKeyType = hsm.ECP256
	}
	if o.RootSubject.CommonName == "" {
		o.RootSubject.CommonName = fmt.Sprintf("MICA Root CA %d", year)
	}
	if o.IssuingSubject.CommonName == "" {
		o.IssuingSubject.CommonName = fmt.Sprintf("MICA Issuing CA %d", year)
	}
	if o.RootID == "" {
		o.RootID = fmt.Sprintf("root-%d", year)
	}
	if o.IssuingID == "" {
		o.IssuingID = fmt.Sprintf("issuing-%d", year)
	}
	if o.RootValidity == 0 {
		o.RootValidity = DefaultRootValidity
	}
	if o.IssuingValidity == 0 {
		o.IssuingValidity = DefaultIssuingValidity
	}
	if o.RootCRLValidity <= 0 {
		o.RootCRLValidity = DefaultCRLValidity
		if o.OfflineRoot {
			o.RootCRLValidity = DefaultOfflineRootCRLValidity
		}
	}
	if o.CRLs == nil {
		o.CRLs, _ = o.Store.(RootCRLStore)
	}
	for _, id := range []string{o.RootID, o.IssuingID} {
		if !profileNameRE.MatchString(id) {
			return Errorf(ErrConfig, "init: issuer ID %q must be 1-63 lower-case letters, digits, '.', '_' or '-'", id)
		}
	}
	if o.RootID == o.IssuingID {
		return Errorf(ErrConfig, "init: root and issuing CA need different IDs (both are %q)", o.RootID)
	}
	if o.IssuingValidity >= o.RootValidity {
		return Errorf(ErrLifetime, "init: issuing CA validity %s must be shorter than the root's %s",
			fmtDuration(o.IssuingValidity), fmtDuration(o.RootValidity))
	}
	return nil
}

// createKey generates a CA key and opens a signer for it.
func createKey(ctx context.Context, b hsm.Backend, name string, kt hsm.KeyType) (string, crypto.Signer, error) {
	uri, err := b.CreateKey(ctx, name, kt)
	if err != nil {
		if errors.Is(err, hsm.ErrExists) {
			return "", nil, Wrap(ErrConfig, err, fmt.Sprintf("a key named %s already exists in the backend", name))
		}
		if errors.Is(err, hsm.ErrUnsupported) {
			return "", nil, Wrap(ErrConfig, err, fmt.Sprintf("the backend cannot create %s keys", kt))
		}
		return "", nil, Wrap(ErrUnavailable, err, fmt.Sprintf("creating the %s key %s failed", kt, name))
	}
	s, err := b.Signer(ctx, uri)
	if err != nil {
		return "", nil, Wrap(ErrUnavailable, err, fmt.Sprintf("the new key %s cannot be opened", redactURI(uri)))
	}
	return uri, s, nil
}

// selfSign makes a root certificate: CA, no path length limit, keyCertSign
// and cRLSign (both extensions critical, as Go always marks them), SKI, no
// AKI (RFC 5280 4.2.1.1 allows leaving it out of a self-signed cert).
func selfSign(key crypto.Signer, subj Subject, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	sn, err := newSerial()
	if err != nil {
		return nil, Wrap(ErrInternal, err, "drawing a serial number failed")
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, Wrap(ErrInternal, err, "computing the root key identifier failed")
	}
	sigAlg, err := signatureAlgorithmFor(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               subj.name(),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          ski,
		SignatureAlgorithm:    sigAlg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "the root key could not sign the root certificate")
	}
	// A root is signed once in its life: lint the real thing.
	errs, _, err := lintDER(der)
	if err != nil {
		return nil, Wrap(ErrInternal, err, "linting the root failed to run")
	}
	if len(errs) > 0 {
		return nil, lintError("root certificate", errs)
	}
	return x509.ParseCertificate(der)
}

func issuerRecord(id, parent string, cert *x509.Certificate, keyURI string, now time.Time) inventory.Issuer {
	kt, _ := keyTypeOf(cert.PublicKey)
	return inventory.Issuer{
		ID:        id,
		ParentID:  parent,
		IsRoot:    parent == "",
		Subject:   cert.Subject.String(),
		KeyURI:    keyURI,
		KeyType:   kt,
		SKI:       hex.EncodeToString(cert.SubjectKeyId),
		NotBefore: cert.NotBefore,
		NotAfter:  cert.NotAfter,
		Status:    StatusActive,
		DER:       cert.Raw,
		CreatedAt: now,
	}
}
