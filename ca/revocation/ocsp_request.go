package revocation

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Errors from ParseRequest and DecodeGETRequest. Every one of them is also
// ErrMalformedRequest, so a handler needs one check to answer with
// MalformedRequestResponse; the finer ones are for logs and metrics.
var (
	ErrMalformedRequest    = errors.New("malformed OCSP request")
	ErrUnsupportedHash     = errors.New("unsupported CertID hash algorithm")
	ErrNonceLength         = errors.New("nonce length outside 1..128 octets")
	ErrUnsupportedCritical = errors.New("unsupported critical extension")
	ErrRequestTooLarge     = errors.New("OCSP request too large")
)

// RequestError says why a request was refused. errors.Is matches both its
// Kind and ErrMalformedRequest.
type RequestError struct {
	Kind   error  // one of the Err* values above
	Detail string // which part of the request, for logs
}

func (e *RequestError) Error() string {
	return "revocation: " + e.Kind.Error() + ": " + e.Detail
}

func (e *RequestError) Unwrap() []error {
	if e.Kind == ErrMalformedRequest {
		return []error{e.Kind}
	}
	return []error{e.Kind, ErrMalformedRequest}
}

func malformed(detail string) error { return &RequestError{Kind: ErrMalformedRequest, Detail: detail} }

// MaxRequestSize bounds what ParseRequest will look at. Real requests are
// 80-500 bytes (a signed one with a certificate a few KB); the HTTP layer
// should cap the body at the same size before reading it.
const MaxRequestSize = 16 << 10

// Nonce length limits from RFC 9654 §2.1.
const (
	MinNonceLength = 1
	MaxNonceLength = 128
)

// CertID names the certificate a request or response is about (RFC 6960
// §4.1.1): hashes of its issuer's name and key, and its serial.
type CertID struct {
	// HashAlgorithm is crypto.SHA1 (what RFC 5019 clients send), SHA256,
	// SHA384 or SHA512. In a Response, zero means SHA-1.
	HashAlgorithm  crypto.Hash
	IssuerNameHash []byte // in a Response, nil means computed from the issuer
	IssuerKeyHash  []byte // likewise
	Serial         *big.Int
}

// Request is the part of an OCSP request (RFC 6960 §4.1) a responder acts on.
type Request struct {
	CertID
	// Nonce is the request's nonce extension value exactly as the client
	// encoded it — for RFC 9654 clients, the DER OCTET STRING wrapping the
	// 1..128 nonce octets. Copy it into Response.Nonce unchanged: clients
	// (OpenSSL among them) compare the extension value byte for byte, and
	// echoing verbatim also satisfies old clients that put raw octets there.
	// Nil when the client sent no nonce; then a pre-signed response fits.
	Nonce []byte
	// Requests is how many entries the requestList had. RFC 5019 §2.1.1
	// clients send one; for more, only the first is answered (CertID), as
	// golang.org/x/crypto/ocsp and Let's Encrypt do, and a multi-cert client
	// treats the missing ones as unanswered.
	Requests int
}

var (
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidNonce  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
)

var certIDHashes = []struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
}{{oidSHA1, crypto.SHA1}, {oidSHA256, crypto.SHA256}, {oidSHA384, crypto.SHA384}, {oidSHA512, crypto.SHA512}}

// ParseRequest decodes a DER OCSPRequest. It is strict about framing (DER,
// nothing trailing), tolerant about content: requestorName, a request
// signature and non-critical extensions are ignored (RFC 5019 responders
// need not check signed requests). Every error is a *RequestError, and the
// input is never retained: the result owns its byte slices.
func ParseRequest(der []byte) (*Request, error) {
	switch {
	case len(der) == 0:
		return nil, malformed("empty request")
	case len(der) > MaxRequestSize:
		return nil, &RequestError{Kind: ErrRequestTooLarge, Detail: fmt.Sprintf("%d bytes", len(der))}
	}
	input := cryptobyte.String(der)
	var ocspReq, tbs cryptobyte.String
	if !input.ReadASN1(&ocspReq, cbasn1.SEQUENCE) {
		return nil, malformed("OCSPRequest is not a DER SEQUENCE")
	}
	if !input.Empty() {
		return nil, malformed("trailing data after OCSPRequest")
	}
	if !ocspReq.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!ocspReq.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || // optionalSignature
		!ocspReq.Empty() {
		return nil, malformed("OCSPRequest structure")
	}

	var ver cryptobyte.String
	var hasVer bool
	if !tbs.ReadOptionalASN1(&ver, &hasVer, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, malformed("version")
	}
	if hasVer {
		var v int64
		if !ver.ReadASN1Integer(&v) || !ver.Empty() || v != 0 {
			return nil, malformed("version is not v1")
		}
	}
	var list cryptobyte.String
	if !tbs.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) || // requestorName
		!tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return nil, malformed("requestList")
	}
	req := &Request{}
	for !list.Empty() {
		var one cryptobyte.String
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) {
			return nil, malformed("Request entry")
		}
		if req.Requests == 0 {
			if err := parseSingleRequest(one, req); err != nil {
				return nil, err
			}
		}
		req.Requests++
	}
	if req.Requests == 0 {
		return nil, malformed("empty requestList")
	}
	var exts cryptobyte.String
	var hasExts bool
	if !tbs.ReadOptionalASN1(&exts, &hasExts, cbasn1.Tag(2).Constructed().ContextSpecific()) || !tbs.Empty() {
		return nil, malformed("TBSRequest structure")
	}
	if hasExts {
		err := forEachExtension(exts, "requestExtensions", func(oid asn1.ObjectIdentifier, critical bool, value []byte) error {
			if !oid.Equal(oidNonce) {
				if critical {
					return &RequestError{Kind: ErrUnsupportedCritical, Detail: oid.String()}
				}
				return nil
			}
			if req.Nonce != nil {
				return malformed("duplicate nonce extension")
			}
			if err := checkNonce(value); err != nil {
				return err
			}
			req.Nonce = bytes.Clone(value)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return req, nil
}

// parseSingleRequest reads Request ::= SEQUENCE { reqCert CertID,
// singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }.
func parseSingleRequest(one cryptobyte.String, req *Request) error {
	var certID, alg, oidParams cryptobyte.String
	var oid asn1.ObjectIdentifier
	var nameHash, keyHash []byte
	serial := new(big.Int)
	if !one.ReadASN1(&certID, cbasn1.SEQUENCE) ||
		!certID.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&oid) ||
		!certID.ReadASN1Bytes(&nameHash, cbasn1.OCTET_STRING) ||
		!certID.ReadASN1Bytes(&keyHash, cbasn1.OCTET_STRING) ||
		!certID.ReadASN1Integer(serial) ||
		!certID.Empty() {
		return malformed("CertID")
	}
	// Parameters are absent or NULL for every digest we know (RFC 5754 §2).
	if !alg.Empty() && (!alg.ReadASN1(&oidParams, cbasn1.NULL) || !oidParams.Empty() || !alg.Empty()) {
		return malformed("CertID hash parameters")
	}
	var h crypto.Hash
	for _, c := range certIDHashes {
		if oid.Equal(c.oid) {
			h = c.hash
		}
	}
	if h == 0 {
		return &RequestError{Kind: ErrUnsupportedHash, Detail: oid.String()}
	}
	if len(nameHash) != h.Size() || len(keyHash) != h.Size() {
		return malformed("CertID hash length does not match its algorithm")
	}
	var exts cryptobyte.String
	var hasExts bool
	if !one.ReadOptionalASN1(&exts, &hasExts, cbasn1.Tag(0).Constructed().ContextSpecific()) || !one.Empty() {
		return malformed("Request structure")
	}
	if hasExts {
		// None are defined that a responder must act on (the service
		// locator is for forwarding proxies); refuse only critical ones.
		err := forEachExtension(exts, "singleRequestExtensions", func(oid asn1.ObjectIdentifier, critical bool, _ []byte) error {
			if critical {
				return &RequestError{Kind: ErrUnsupportedCritical, Detail: oid.String()}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	req.CertID = CertID{HashAlgorithm: h, IssuerNameHash: bytes.Clone(nameHash), IssuerKeyHash: bytes.Clone(keyHash), Serial: serial}
	return nil
}

// forEachExtension walks the Extensions SEQUENCE inside an explicit tag.
func forEachExtension(in cryptobyte.String, where string, f func(asn1.ObjectIdentifier, bool, []byte) error) error {
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return malformed(where)
	}
	for !seq.Empty() {
		var ext cryptobyte.String
		var oid asn1.ObjectIdentifier
		var critical bool
		var value []byte
		if !seq.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&oid) {
			return malformed(where + " extension")
		}
		// critical is a plain BOOLEAN DEFAULT FALSE. (cryptobyte's
		// ReadOptionalASN1Boolean is for EXPLICIT-tagged ones, so no.)
		// An explicit FALSE is not DER but is accepted, as x509 does.
		if ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&critical) {
			return malformed(where + " extension criticality")
		}
		if !ext.ReadASN1Bytes(&value, cbasn1.OCTET_STRING) || !ext.Empty() {
			return malformed(where + " extension value")
		}
		if err := f(oid, critical, value); err != nil {
			return err
		}
	}
	return nil
}

// checkNonce applies RFC 9654 §2.1: the nonce is 1..128 octets, and a
// request outside that gets malformedRequest. The length checked is that of
// the inner OCTET STRING; a value that is not one (pre-RFC 8954 clients put
// raw octets in extnValue) is measured as it stands. We choose rejection
// over silently dropping the nonce because a client that asked for replay
// protection should learn it did not get any.
func checkNonce(value []byte) error {
	n := len(value)
	s := cryptobyte.String(value)
	var inner cryptobyte.String
	if s.ReadASN1(&inner, cbasn1.OCTET_STRING) && s.Empty() {
		n = len(inner)
	}
	if n < MinNonceLength || n > MaxNonceLength {
		return &RequestError{Kind: ErrNonceLength, Detail: fmt.Sprintf("%d octets", n)}
	}
	return nil
}

// MatchesIssuer reports whether id names a certificate issued by issuer,
// i.e. whether its name and key hashes are issuer's. A responder answers
// "unknown" for unknown serials of its own issuers and "unauthorized" for
// CertIDs that match none of them (RFC 6960 §2.3).
func (id *CertID) MatchesIssuer(issuer *x509.Certificate) bool {
	name, key, err := issuerHashes(issuer, id.HashAlgorithm)
	return err == nil && bytes.Equal(name, id.IssuerNameHash) && bytes.Equal(key, id.IssuerKeyHash)
}

// NewCertID builds the CertID of serial under issuer, e.g. to pre-sign a
// response at issuance before any request exists (hash 0 means SHA-1).
func NewCertID(issuer *x509.Certificate, h crypto.Hash, serial *big.Int) (CertID, error) {
	if h == 0 {
		h = crypto.SHA1
	}
	name, key, err := issuerHashes(issuer, h)
	if err != nil {
		return CertID{}, err
	}
	return CertID{HashAlgorithm: h, IssuerNameHash: name, IssuerKeyHash: key, Serial: serial}, nil
}

// issuerHashes returns H(issuer's DER subject) and H(its subjectPublicKey
// bits), the two CertID hashes (RFC 6960 §4.1.1).
func issuerHashes(issuer *x509.Certificate, h crypto.Hash) (name, key []byte, err error) {
	if issuer == nil {
		return nil, nil, errors.New("revocation: no issuer certificate")
	}
	if !hashSupported(h) {
		return nil, nil, fmt.Errorf("revocation: unsupported CertID hash %v", h)
	}
	bits, err := publicKeyBits(issuer)
	if err != nil {
		return nil, nil, err
	}
	hn := h.New()
	hn.Write(issuer.RawSubject)
	name = hn.Sum(nil)
	hk := h.New()
	hk.Write(bits)
	return name, hk.Sum(nil), nil
}

func hashSupported(h crypto.Hash) bool {
	for _, c := range certIDHashes {
		if c.hash == h {
			return true
		}
	}
	return false
}

// publicKeyBits extracts the subjectPublicKey BIT STRING contents from a
// certificate's SubjectPublicKeyInfo.
func publicKeyBits(c *x509.Certificate) ([]byte, error) {
	spki := cryptobyte.String(c.RawSubjectPublicKeyInfo)
	var seq cryptobyte.String
	var bits asn1.BitString
	if !spki.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.SkipASN1(cbasn1.SEQUENCE) || !seq.ReadASN1BitString(&bits) {
		return nil, errors.New("revocation: malformed SubjectPublicKeyInfo in certificate")
	}
	return bits.Bytes, nil
}

// DecodeGETRequest decodes the path part of an RFC 6960 Appendix A.1 GET
// (everything after "/ocsp/") into request DER. Clients and proxies mangle
// it in every possible way, so it undoes percent-encoding, accepts the
// standard and URL-safe alphabets with or without padding, and turns
// spaces back into the '+' a form decoder made of them. Pass the raw
// (escaped) path: a router that cleans paths turns the "//" standard
// base64 can contain into "/" and breaks the request.
func DecodeGETRequest(path string) ([]byte, error) {
	if len(path) > 4*MaxRequestSize {
		return nil, &RequestError{Kind: ErrRequestTooLarge, Detail: "GET path"}
	}
	if u, err := url.PathUnescape(path); err == nil {
		path = u
	}
	path = strings.TrimRight(path, "=")
	path = strings.NewReplacer(" ", "+", "-", "+", "_", "/").Replace(path)
	der, err := base64.RawStdEncoding.DecodeString(path)
	if err != nil {
		return nil, malformed("GET request is not base64")
	}
	return der, nil
}
