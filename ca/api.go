package ca

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// URLs are the relying-party URLs written into every certificate. Each base
// ends in "/" and gets "{issuer}.crl" / "{issuer}.crt" appended.
type URLs struct {
	CRLBase       string `yaml:"crl_base" json:"crl_base"`               // e.g. http://ca.example/crl/
	OCSP          string `yaml:"ocsp" json:"ocsp"`                       // e.g. http://ca.example/ocsp
	CAIssuersBase string `yaml:"ca_issuers_base" json:"ca_issuers_base"` // e.g. http://ca.example/ca/
}

// Request asks for one end-entity certificate.
type Request struct {
	CSR       []byte    // PKCS#10, DER or PEM
	Profile   string    // issuance profile name
	NotBefore time.Time // optional; zero means now (back-dated by the profile's backdate)
	NotAfter  time.Time // optional; zero means NotBefore + profile default lifetime
	// Identifiers, when non-nil, are the names a front end has authorised
	// (ACME authorizations, EST token bindings): the CSR's names must equal
	// this set. Nil means the CSR's names are used as they are, checked
	// against the profile.
	Identifiers []string // "dns:a.test", "ip:10.0.0.1", "uri:spiffe://x/y", "email:a@b.test"
	Requester   string   // who asked (CLI user, ACME account URL, EST user/cert)
	Protocol    string   // cli, acme, est, api, server
	Source      string   // remote address or host
	Predecessor string   // serial of the certificate this one renews, if any; "issuerID/serial" when another issuer signed it
	// Reserved, when set, is called once the serial is reserved (the
	// certificate row is "requested") and before the HSM signs. A front
	// end records the reservation on its own unit of work here (the ACME
	// order names its certificate), so that after a crash the recovery
	// pass can find the certificate the request was waiting for. An error
	// abandons the reservation: nothing is signed.
	Reserved func(ctx context.Context, issuerID, serial string) error
}

// Issued is a certificate that is committed to the store.
type Issued struct {
	Certificate *x509.Certificate
	Chain       []*x509.Certificate // issuing CA first, up to but excluding the root
	Record      *inventory.Certificate
}

// PEM returns the leaf followed by its chain, PEM-encoded.
func (i *Issued) PEM() []byte {
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.Certificate.Raw})
	for _, c := range i.Chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// Options configure a CA engine.
type Options struct {
	Store    Store
	Keys     hsm.Backend
	Profiles map[string]Profile // nil or empty means DefaultProfiles()
	URLs     URLs
	Now      func() time.Time // nil means time.Now
	Logger   *slog.Logger     // nil means slog.Default()

	// OnRevoke, when set, is called after every revocation is committed,
	// with the updated record. It is the hook for CRL regeneration and OCSP
	// pre-signing. It runs on the revoking goroutine, after the store
	// transaction, so it must not block for long and cannot undo the
	// revocation; ctx is the revoking request's context.
	OnRevoke func(ctx context.Context, c *inventory.Certificate)

	// RevocationStore, when set, turns on the revocation service: OCSP
	// responses pre-signed at issuance and revocation, CRLs (see
	// [CA.GenerateCRLs], [CA.RunRevocation]) and the blocked-key check in
	// Issue. *inventory.Store satisfies it; cmd/mica always sets it. Nil
	// (issuance unit tests) means none of these happen.
	RevocationStore RevocationStore
	Revocation      RevocationConfig
}
