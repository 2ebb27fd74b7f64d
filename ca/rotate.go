package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// RotateOptions configure an issuing-CA rotation.
type RotateOptions struct {
	Store KeyStore
	Keys  hsm.Backend // where the new issuing key is generated (the current one's backend)
	// RootSigner signs the new intermediate when the root is online; nil
	// for the offline round trip (PrepareRotation / ImportIntermediate).
	RootSigner crypto.Signer
	RootID     string      // default: the parent of the active issuing CA
	NewID      string      // default "issuing-{YYYYMMDDhhmmss}" of Now
	KeyType    hsm.KeyType // default: the active issuing CA's key type
	Subject    Subject     // default: CN of the active issuing CA + the activation date
	Validity   time.Duration
	// At is when new issuance switches to the new CA (its certificate's
	// notBefore: a CA starts issuing when its certificate starts); zero
	// means now. Until then the
	// current CA keeps issuing; afterwards it keeps its CRL and OCSP duty
	// until its last certificate expires (see RetireIssuers).
	At     time.Time
	URLs   URLs
	Policy KeyPolicy
	Now    func() time.Time
	Who    Actor
}

// RotateResult describes the new issuing CA.
type RotateResult struct {
	Issuer inventory.Issuer
	Cert   *x509.Certificate
	Key    inventory.Key
}

// current finds the active issuing CA and its root.
func (o *RotateOptions) current(ctx context.Context) (active, root inventory.Issuer, err error) {
	issuers, err := o.Store.Issuers(ctx)
	if err != nil {
		return active, root, Wrap(ErrUnavailable, err, "cannot read the issuers from the store")
	}
	now := o.Now()
	byID := map[string]inventory.Issuer{}
	for _, is := range issuers {
		byID[is.ID] = is
		if is.IsRoot || is.Status != StatusActive || is.KeyURI == "" || is.NotBefore.After(now) {
			continue
		}
		if active.ID == "" || newerIssuer(is, active) {
			active = is
		}
	}
	if active.ID == "" {
		return active, root, Errorf(ErrConfig, "no active issuing CA to rotate; run `mica init` first")
	}
	rootID := o.RootID
	if rootID == "" {
		rootID = active.ParentID
	}
	root, ok := byID[rootID]
	if !ok || !root.IsRoot {
		return active, root, Errorf(ErrConfig, "root %s is not in the store", rootID)
	}
	return active, root, nil
}

func (o *RotateOptions) defaults(active inventory.Issuer) error {
	if o.Now == nil {
		o.Now = time.Now
	}
	now := o.Now().UTC().Truncate(time.Second)
	if o.At.IsZero() || o.At.Before(now) {
		o.At = now
	}
	if o.NewID == "" {
		o.NewID = "issuing-" + o.At.UTC().Format("20060102150405")
	}
	if o.KeyType == "" {
		o.KeyType = hsm.KeyType(active.KeyType)
	}
	if o.Subject.CommonName == "" {
		cert, err := x509.ParseCertificate(active.DER)
		if err != nil {
			return Wrap(ErrConfig, err, "the active issuing CA's certificate does not parse")
		}
		o.Subject = Subject{CommonName: "MICA Issuing CA " + o.At.UTC().Format("2006-01-02"), Organization: firstOrg(cert)}
	}
	return nil
}

func firstOrg(c *x509.Certificate) string {
	if len(c.Subject.Organization) > 0 {
		return c.Subject.Organization[0]
	}
	return ""
}

// Rotate creates a new issuing key in o.Keys, has the online root sign its
// certificate, and records issuer and key. New issuance moves to it at
// o.At (a CA built after that picks it: the latest started issuer wins).
func Rotate(ctx context.Context, o RotateOptions) (*RotateResult, error) {
	if o.RootSigner == nil {
		return nil, Errorf(ErrConfig, "the root key is not online: use the offline round trip (rotate --csr-out, sign-intermediate, import)")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	active, root, err := o.current(ctx)
	if err != nil {
		return nil, err
	}
	if err := o.defaults(active); err != nil {
		return nil, err
	}
	csr, k, err := newIssuingKey(ctx, o)
	if err != nil {
		return nil, err
	}
	rootCert, err := x509.ParseCertificate(root.DER)
	if err != nil {
		return nil, Wrap(ErrConfig, err, "the root certificate does not parse")
	}
	at := o.At
	cert, err := SignIntermediate(ctx, o.RootSigner, rootCert, csr, IntermediateOptions{
		Subject: o.Subject, RootID: root.ID, URLs: o.URLs, Validity: o.Validity,
		Now: func() time.Time { return at.Add(caBackdate) },
	})
	if err != nil {
		return nil, err
	}
	return record(ctx, o, root.ID, cert, k)
}

// PrepareRotation is the online half of an offline-root rotation: it
// generates the new issuing key, registers it as pre-activation and
// returns its CSR (PEM) for the root's machine.
func PrepareRotation(ctx context.Context, o RotateOptions) ([]byte, *inventory.Key, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	active, _, err := o.current(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := o.defaults(active); err != nil {
		return nil, nil, err
	}
	csr, k, err := newIssuingKey(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), k, nil
}

// newIssuingKey generates the key, registers it pre-activation and signs
// a CSR with it.
func newIssuingKey(ctx context.Context, o RotateOptions) ([]byte, *inventory.Key, error) {
	uri, signer, err := createKey(ctx, o.Keys, o.NewID, o.KeyType)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: o.Subject.name()}, signer)
	if err != nil {
		return nil, nil, Wrap(ErrUnavailable, err, "the new issuing key could not sign its CSR")
	}
	spki, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, nil, Wrap(ErrInternal, err, "encoding the new public key")
	}
	k := &inventory.Key{
		ID: o.NewID, Class: KeyClassIssuing, Backend: backendName(uri), URI: uri, Algorithm: string(o.KeyType),
		IssuerID: o.NewID, PublicKey: spki, SPKISHA256: spkiSHA256(spki), Status: inventory.KeyPreActivation,
		Cryptoperiod: o.Policy.Cryptoperiods[KeyClassIssuing], ActivateAt: o.At,
	}
	if p, err := o.Keys.Protection(ctx, uri); err == nil {
		k.Protection, _ = jsonMarshal(p)
	}
	if err := o.Store.PutKey(ctx, k, o.Who.event("key.create", "key:"+k.ID, map[string]any{"class": k.Class, "algorithm": k.Algorithm, "activate_at": o.At})); err != nil {
		return nil, nil, Wrap(ErrUnavailable, err, "registering the new key "+k.ID)
	}
	return csr, k, nil
}

// ImportIntermediate is the online half's return leg: it takes the
// certificate the offline root signed (PEM or DER), matches it to the
// pre-activation key whose CSR went out, checks it chains to a root in the
// store, and records the issuer. It activates at the certificate's
// notBefore.
func ImportIntermediate(ctx context.Context, st KeyStore, b hsm.Backend, certPEM []byte, now time.Time, who Actor) (*RotateResult, error) {
	der := certPEM
	if blk, _ := pem.Decode(certPEM); blk != nil {
		der = blk.Bytes
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, Wrap(ErrBadCSR, err, "the file is not a certificate")
	}
	want := spkiSHA256(cert.RawSubjectPublicKeyInfo)
	keys, err := st.Keys(ctx)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "cannot read the key inventory")
	}
	var k *inventory.Key
	for i := range keys {
		if keys[i].SPKISHA256 == want && keys[i].Status == inventory.KeyPreActivation {
			k = &keys[i]
		}
	}
	if k == nil {
		return nil, Errorf(ErrNotFound, "no pending rotation key matches this certificate's public key (run `mica ca rotate --csr-out` first)")
	}
	signer, err := b.Signer(ctx, k.URI)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "the pending key "+k.ID+" cannot be opened")
	}
	if !samePublicKey(signer.Public(), cert.PublicKey) {
		return nil, Errorf(ErrConfig, "the key %s does not match the certificate", k.ID)
	}
	issuers, err := st.Issuers(ctx)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "cannot read the issuers from the store")
	}
	rootID := ""
	for _, is := range issuers {
		if !is.IsRoot {
			continue
		}
		rc, err := x509.ParseCertificate(is.DER)
		if err == nil && cert.CheckSignatureFrom(rc) == nil {
			rootID = is.ID
		}
	}
	if rootID == "" {
		return nil, Errorf(ErrConfig, "the certificate is not signed by any root in the store")
	}
	if !cert.IsCA || cert.NotAfter.Before(now) {
		return nil, Errorf(ErrConfig, "the certificate is not a valid CA certificate")
	}
	o := RotateOptions{Store: st, NewID: k.ID, Who: who, Now: func() time.Time { return now }}
	return record(ctx, o, rootID, cert, k)
}

// record stores the new issuer and activates its key.
func record(ctx context.Context, o RotateOptions, rootID string, cert *x509.Certificate, k *inventory.Key) (*RotateResult, error) {
	is := issuerRecord(k.ID, rootID, cert, k.URI, o.Now())
	details := map[string]any{"root": rootID, "activate_at": cert.NotBefore, "not_after": cert.NotAfter, "key": k.ID}
	if err := o.Store.PutIssuer(ctx, &is, o.Who.event("ca.rotate", "issuer:"+is.ID, details)); err != nil {
		if errors.Is(err, inventory.ErrDuplicate) {
			return nil, Wrap(ErrConfig, err, fmt.Sprintf("issuer %s already exists", is.ID))
		}
		return nil, Wrap(ErrUnavailable, err, "recording issuer "+is.ID)
	}
	if err := o.Store.SetKeyStatus(ctx, k.ID, inventory.KeyActive, o.Who.event("key.activate", "key:"+k.ID, details)); err != nil {
		return nil, Wrap(ErrUnavailable, err, "activating key "+k.ID)
	}
	k.Status, k.IssuerID = inventory.KeyActive, is.ID
	return &RotateResult{Issuer: is, Cert: cert, Key: *k}, nil
}

// ServingIssuers lists the issuing CAs relying parties may meet now, the
// one issuing first: every active issuing CA whose certificate has started
// and not expired. During a rotation's overlap that is the new CA and the
// old one still publishing CRLs and OCSP; EST /cacerts and ACME chain
// alternates offer these.
func (c *CA) ServingIssuers(ctx context.Context) ([]inventory.Issuer, error) {
	all, err := c.Issuers(ctx)
	if err != nil {
		return nil, err
	}
	now := c.now()
	var out []inventory.Issuer
	for _, is := range all {
		if Serving(is, now) {
			out = append(out, is)
		}
	}
	slices.SortStableFunc(out, func(a, b inventory.Issuer) int {
		if newerIssuer(b, a) {
			return 1
		}
		if newerIssuer(a, b) {
			return -1
		}
		return 0
	})
	return out, nil
}

// newerIssuer reports whether a supersedes b: it started later or, started
// in the same second (an intermediate signed right after the CA was set
// up is clamped to the root's notBefore), was recorded later.
func newerIssuer(a, b inventory.Issuer) bool {
	if !a.NotBefore.Equal(b.NotBefore) {
		return a.NotBefore.After(b.NotBefore)
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}

// Serving reports whether is is an issuing CA relying parties may meet at
// now: not a root, active, started and not expired.
func Serving(is inventory.Issuer, now time.Time) bool {
	return !is.IsRoot && is.Status == StatusActive && !is.NotBefore.After(now) && now.Before(is.NotAfter)
}

// ServingOf lists the serving issuers (see Serving) that hold an online
// key, so owe CRLs and OCSP now, by ID.
func ServingOf(issuers []inventory.Issuer, now time.Time) []inventory.Issuer {
	var out []inventory.Issuer
	for _, is := range issuers {
		if Serving(is, now) && is.KeyURI != "" {
			out = append(out, is)
		}
	}
	slices.SortFunc(out, func(a, b inventory.Issuer) int { return strings.Compare(a.ID, b.ID) })
	return out
}
