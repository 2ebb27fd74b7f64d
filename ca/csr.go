package ca

import (
	"bytes"
	"crypto/ecdh"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
)

// maxCSRSize bounds what we parse; real CSRs are a few KiB at most.
const maxCSRSize = 64 << 10

var (
	oidPublicKeyEC  = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidPublicKeyDSA = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}
)

// curveNames names curves Go does not parse, so a refusal can say which
// curve it was rather than print an OID.
var curveNames = map[string]string{
	"1.2.840.10045.3.1.1":   "P-192",
	"1.3.132.0.10":          "secp256k1",
	"1.3.36.3.3.2.8.1.1.7":  "brainpoolP256r1",
	"1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1",
	"1.3.36.3.3.2.8.1.1.13": "brainpoolP512r1",
}

// keyAlgorithmNames names key algorithms Go does not parse in CSRs.
var keyAlgorithmNames = map[string]string{
	"1.3.101.110":           "X25519",
	"1.3.101.111":           "X448",
	"1.3.101.112":           "Ed25519",
	"1.3.101.113":           "Ed448",
	"1.2.840.113549.1.1.10": "RSASSA-PSS",
}

// rawCSR mirrors the outer structure of a PKCS#10 request just far enough to
// find the subject public key when crypto/x509 refuses to parse it.
type rawCSR struct {
	TBS struct {
		Raw       asn1.RawContent
		Version   int
		Subject   asn1.RawValue
		PublicKey struct {
			Algorithm pkix.AlgorithmIdentifier
			PublicKey asn1.BitString
		}
		RawAttributes []asn1.RawValue `asn1:"tag:0"`
	}
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          asn1.BitString
}

// parseCSR decodes a PKCS#10 request given as DER or PEM and checks that it
// is well formed and that its subject key is of a kind MICA knows. It does
// not check the signature or the profile. Every refusal is ErrBadCSR or
// ErrWeakKey with a message that names the problem.
func parseCSR(in []byte) (*x509.CertificateRequest, error) {
	if len(in) == 0 {
		return nil, Errorf(ErrBadCSR, "CSR is empty")
	}
	if len(in) > maxCSRSize {
		return nil, Errorf(ErrBadCSR, "CSR is larger than %d KiB", maxCSRSize>>10)
	}
	der := in
	if t := bytes.TrimLeft(in, " \t\r\n"); bytes.HasPrefix(t, []byte("-----BEGIN")) {
		block, rest := pem.Decode(t)
		if block == nil {
			return nil, Errorf(ErrBadCSR, "CSR PEM is malformed (bad armour or base64 body)")
		}
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, Errorf(ErrBadCSR, "PEM block is %q, want \"CERTIFICATE REQUEST\"", block.Type)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, Errorf(ErrBadCSR, "trailing data after the CSR PEM block")
		}
		der = block.Bytes
	} else if in[0] != 0x30 {
		return nil, Errorf(ErrBadCSR, "CSR is neither DER (an ASN.1 SEQUENCE) nor PEM")
	}

	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		if kerr := classifyUnparsedKey(der); kerr != nil {
			return nil, kerr
		}
		var se asn1.SyntaxError
		if errors.As(err, &se) && se.Msg == "trailing data" {
			return nil, Wrap(ErrBadCSR, err, "trailing data after the CSR")
		}
		return nil, Wrap(ErrBadCSR, err, fmt.Sprintf("CSR is not a valid PKCS#10 request: %v", err))
	}
	if csr.PublicKey == nil {
		var raw rawCSR
		if _, err := asn1.Unmarshal(der, &raw); err == nil {
			oid := raw.TBS.PublicKey.Algorithm.Algorithm.String()
			if name := keyAlgorithmNames[oid]; name != "" {
				return nil, Errorf(ErrWeakKey, "%s keys are not supported (use ECDSA P-256, P-384 or RSA)", name)
			}
			return nil, Errorf(ErrWeakKey, "public key algorithm %s is not supported", oid)
		}
		return nil, Errorf(ErrWeakKey, "the public key algorithm is not supported")
	}
	if _, ok := csr.PublicKey.(*ecdh.PublicKey); ok {
		return nil, Errorf(ErrWeakKey, "X25519 keys cannot sign and are not supported")
	}
	return csr, nil
}

// classifyUnparsedKey looks at the key of a request crypto/x509 refused and
// returns ErrWeakKey if the key is the reason (an unknown curve, a DSA key
// Go cannot read), or nil to report the parse error as it is.
func classifyUnparsedKey(der []byte) error {
	var raw rawCSR
	if _, err := asn1.Unmarshal(der, &raw); err != nil {
		return nil
	}
	alg := raw.TBS.PublicKey.Algorithm
	switch {
	case alg.Algorithm.Equal(oidPublicKeyEC):
		var curve asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(alg.Parameters.FullBytes, &curve); err != nil {
			return Errorf(ErrWeakKey, "EC key without a named curve is not supported")
		}
		switch curve.String() {
		case "1.2.840.10045.3.1.7", "1.3.132.0.34", "1.3.132.0.35", "1.3.132.0.33":
			return nil // a known curve: the parse failed for another reason
		}
		name := curveNames[curve.String()]
		if name == "" {
			name = curve.String()
		}
		return Errorf(ErrWeakKey, "elliptic curve %s is not supported (use P-256 or P-384)", name)
	case alg.Algorithm.Equal(oidPublicKeyDSA):
		return Errorf(ErrWeakKey, "DSA keys are not allowed (use ECDSA P-256, P-384 or RSA of 2048 bits or more)")
	}
	return nil
}

// verifyCSRSignature proves the requester holds the private key. Go refuses
// MD5 and (for CSRs) accepts SHA-1; we refuse SHA-1 too.
func verifyCSRSignature(csr *x509.CertificateRequest) error {
	switch csr.SignatureAlgorithm {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		return Errorf(ErrBadCSR, "CSR is signed with %s, which is not allowed (use SHA-256 or better)", csr.SignatureAlgorithm)
	}
	if err := csr.CheckSignature(); err != nil {
		return Wrap(ErrBadCSR, err, "CSR signature does not verify")
	}
	return nil
}
