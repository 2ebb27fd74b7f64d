package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"math/big"
	"time"

	"github.com/mica-pki/mica/ca/revocation"
	"github.com/mica-pki/mica/inventory"
)

// DefaultOfflineRootCRLValidity is nextUpdate − thisUpdate of a CRL
// signed by a root whose key then goes offline: nothing can re-sign it
// until the next key ceremony, so it must outlast the gap between two
// (a ceremony at least once a year re-signs it: `mica ca sign-intermediate
// --crl-out`, then `mica ca import --crl`).
const DefaultOfflineRootCRLValidity = 365 * day

// RootCRLStore is where a root's CRL is recorded. *inventory.Store
// satisfies it; the contract of [RevocationStore] applies.
type RootCRLStore interface {
	NextCRLNumber(ctx context.Context, issuerID string) (int64, error)
	PutCRL(ctx context.Context, c *inventory.CRL) (bool, error)
}

// SignRootCRL signs a CRL for a root with no revoked certificates: the
// CRL every intermediate's CRL Distribution Point names, so that relying
// parties checking the whole chain (openssl -crl_check_all, Windows
// CAPI) find it. MICA never revokes an intermediate through the online
// CA, so the list is empty; a compromised intermediate is handled by a
// key ceremony. number must grow with each CRL of this root.
func SignRootCRL(root *x509.Certificate, signer crypto.Signer, number int64, now time.Time, validity time.Duration) ([]byte, error) {
	now = now.UTC().Truncate(time.Second)
	tmpl := revocation.CRLTemplate{Number: big.NewInt(number), ThisUpdate: now, NextUpdate: now.Add(validity)}
	var buf bytes.Buffer
	none := func(func(revocation.Entry) error) error { return nil }
	if _, err := revocation.WriteCRL(&buf, tmpl, root, signer, none); err != nil {
		return nil, Wrap(ErrUnavailable, err, fmt.Sprintf("signing the CRL of %s failed", root.Subject.CommonName))
	}
	return buf.Bytes(), nil
}

// storeRootCRL signs the root's first CRL and records it, so /crl/{root}.crl
// answers from the first start, even when the root key goes offline.
func storeRootCRL(ctx context.Context, st RootCRLStore, rootID string, root *x509.Certificate, signer crypto.Signer, now time.Time, validity time.Duration) error {
	num, err := st.NextCRLNumber(ctx, rootID)
	if err != nil {
		return Wrap(ErrUnavailable, err, "drawing a CRL number for the root failed")
	}
	der, err := SignRootCRL(root, signer, num, now, validity)
	if err != nil {
		return err
	}
	_, err = ImportCRL(ctx, st, rootID, root, der)
	return err
}

// ImportCRL records a CRL signed elsewhere (by an offline root during a
// key ceremony) after checking it is a CRL of issuer, signed by its key,
// and newer than nothing it would replace (the store keeps the highest
// number): it reports false, storing nothing, for a CRL whose number is
// not above the stored one. Errors: ErrConfig for a CRL that is not the
// issuer's, ErrUnavailable when the store fails.
func ImportCRL(ctx context.Context, st RootCRLStore, issuerID string, issuer *x509.Certificate, der []byte) (bool, error) {
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return false, Wrap(ErrConfig, err, "the CRL does not parse")
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return false, Wrap(ErrConfig, err, fmt.Sprintf("the CRL is not signed by %s", issuer.Subject.CommonName))
	}
	if crl.Number == nil || !crl.Number.IsInt64() || crl.Number.Sign() <= 0 {
		return false, Errorf(ErrConfig, "the CRL has no usable CRL number")
	}
	rec := &inventory.CRL{IssuerID: issuerID, Number: crl.Number.Int64(), ThisUpdate: crl.ThisUpdate.UTC(),
		NextUpdate: crl.NextUpdate.UTC(), Entries: int64(len(crl.RevokedCertificateEntries)), DER: der}
	stored, err := st.PutCRL(ctx, rec)
	if err != nil {
		return false, Wrap(ErrUnavailable, err, "storing the CRL of "+issuerID+" failed")
	}
	return stored, nil
}
