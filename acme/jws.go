package acme

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/mica-pki/mica/inventory"
)

// allowedAlgs is the explicit allowlist for account and certificate key
// signatures: no "none", no HMAC (HS256 only ever appears inside an EAB
// binding, verified separately).
var allowedAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.PS256, jose.EdDSA}

func algNames() []string {
	out := make([]string, len(allowedAlgs))
	for i, a := range allowedAlgs {
		out[i] = string(a)
	}
	return out
}

// authMode says which key reference a resource accepts (RFC 8555 6.2).
type authMode int

const (
	kidOnly  authMode = iota // every resource but the two below
	jwkOnly                  // newAccount
	jwkOrKid                 // revokeCert: account key or certificate key
)

// request is a verified ACME POST.
type request struct {
	*http.Request
	payload   []byte
	postAsGet bool                   // empty payload (RFC 8555 section 6.3)
	account   *inventory.ACMEAccount // set for kid requests
	jwk       *jose.JSONWebKey       // set for jwk requests
	url       string                 // the protected "url", equal to the request URL
	raw       []byte                 // the whole JWS as sent
}

type handler func(w http.ResponseWriter, req *request) error

// protectedHeader is what the server reads from a JWS protected header
// before trusting anything in it.
type protectedHeader struct {
	Alg   string          `json:"alg"`
	Kid   string          `json:"kid"`
	JWK   json.RawMessage `json:"jwk"`
	Nonce string          `json:"nonce"`
	URL   string          `json:"url"`
	// B64 and Crit are read only to refuse them: RFC 8555 section 6.2
	// allows no JWS extensions, and an unencoded payload (RFC 7797,
	// b64: false) would otherwise be verified over different bytes than
	// the ones decoded.
	B64  *bool           `json:"b64"`
	Crit json.RawMessage `json:"crit"`
}

type flatJWS struct {
	Protected  string          `json:"protected"`
	Payload    *string         `json:"payload"`
	Signature  string          `json:"signature"`
	Header     json.RawMessage `json:"header"`
	Signatures json.RawMessage `json:"signatures"`
}

// handle verifies the JWS of a POST and runs h; every failure on the way,
// and every error h returns, becomes a problem document.
func (s *Server) handle(h handler, mode authMode) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, p := s.verify(w, r, mode)
		s.deniedJWS(r, p) // counts a failed verification; nil p: nothing
		if p == nil {
			if err := h(w, req); err != nil {
				p = caProblem(err)
			}
		}
		if p != nil {
			s.m.problem(p)
			if p.Status >= 500 {
				s.log.Error("acme request failed", "path", r.URL.Path, "err", p)
			} else {
				s.log.Debug("acme request refused", "path", r.URL.Path, "problem", p.Type, "detail", p.Detail, "err", p.cause)
			}
			writeProblem(w, p)
		}
	}
}

// verify checks, in order: content type, size, JWS shape, algorithm,
// key reference, url, signature, and last the nonce — so a request that
// fails for another reason does not burn the client's nonce.
func (s *Server) verify(w http.ResponseWriter, r *http.Request, mode authMode) (*request, *Problem) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/jose+json" {
		return nil, problem(probMalformed, http.StatusUnsupportedMediaType, "Content-Type must be application/jose+json")
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, problem(probMalformed, http.StatusRequestEntityTooLarge, "request body over %d bytes", s.opts.MaxBodyBytes)
		}
		return nil, malformed("cannot read the request body")
	}
	hdr, p := parseProtected(raw)
	if p != nil {
		return nil, p
	}
	req := &request{Request: r, raw: raw, url: hdr.URL}
	if want := s.base(r) + r.URL.Path; hdr.URL != want {
		return nil, unauthorized("the JWS url %q is not the request URL %q", hdr.URL, want)
	}
	var key *jose.JSONWebKey
	switch {
	case hdr.Kid != "" && len(hdr.JWK) > 0:
		return nil, malformed("the JWS has both jwk and kid")
	case hdr.Kid == "" && len(hdr.JWK) == 0:
		return nil, malformed("the JWS has neither jwk nor kid")
	case len(hdr.JWK) > 0:
		if mode == kidOnly {
			return nil, malformed("this resource needs a kid, not a jwk")
		}
		if key, p = parseJWK(hdr.JWK); p != nil {
			return nil, p
		}
		req.jwk = key
	default:
		if mode == jwkOnly {
			return nil, malformed("newAccount needs a jwk, not a kid")
		}
		acct, p := s.accountByKid(r, hdr.Kid)
		if p != nil {
			return nil, p
		}
		if key, p = parseJWK(json.RawMessage(acct.JWK)); p != nil {
			return nil, internal(p)
		}
		req.account = acct
	}
	payload, p := verifySignature(raw, key)
	if p != nil {
		return nil, p
	}
	if hdr.Nonce == "" {
		return nil, problem(probBadNonce, http.StatusBadRequest, "the JWS has no nonce")
	}
	ok, err := s.nonces.redeem(r.Context(), hdr.Nonce)
	if err != nil {
		return nil, internal(err)
	}
	if !ok {
		return nil, problem(probBadNonce, http.StatusBadRequest, "the nonce is unknown, used or expired")
	}
	req.payload, req.postAsGet = payload, len(payload) == 0
	return req, nil
}

// parseProtected decodes a flattened JWS's protected header and checks
// the algorithm against the allowlist before anything else reads it.
func parseProtected(raw []byte) (*protectedHeader, *Problem) {
	var f flatJWS
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, malformed("the body is not a JWS in flattened JSON serialization")
	}
	if len(f.Signatures) > 0 {
		return nil, malformed("the JWS must have exactly one signature (flattened serialization)")
	}
	if len(f.Header) > 0 {
		return nil, malformed("the JWS must not have an unprotected header")
	}
	if f.Protected == "" {
		return nil, malformed("the JWS has no protected header")
	}
	b, err := base64.RawURLEncoding.DecodeString(f.Protected)
	if err != nil {
		return nil, malformed("the JWS protected header is not base64url")
	}
	var h protectedHeader
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, malformed("the JWS protected header is not JSON")
	}
	if len(h.Crit) > 0 {
		return nil, malformed("the JWS protected header lists critical extensions (crit), which ACME does not use")
	}
	if h.B64 != nil && !*h.B64 {
		return nil, malformed("the JWS payload must be base64url-encoded (b64: false is not allowed)")
	}
	if !contains(algNames(), h.Alg) {
		p := problem(probBadSignatureAlg, http.StatusBadRequest, "signature algorithm %q is not supported", h.Alg)
		p.Algorithms = algNames()
		return nil, p
	}
	if f.Payload == nil || f.Signature == "" {
		return nil, malformed("the JWS needs a payload and a signature")
	}
	return &h, nil
}

// parseJWK accepts public ECDSA (P-256, P-384), RSA (2048 bits or more)
// and Ed25519 keys.
func parseJWK(b json.RawMessage) (*jose.JSONWebKey, *Problem) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		return nil, problem(probBadPublicKey, http.StatusBadRequest, "the jwk is not a valid JSON Web Key")
	}
	if !k.Valid() || !k.IsPublic() {
		return nil, problem(probBadPublicKey, http.StatusBadRequest, "the jwk must be a valid public key")
	}
	switch pk := k.Key.(type) {
	case *ecdsa.PublicKey:
		if n := pk.Curve.Params().Name; n != "P-256" && n != "P-384" {
			return nil, problem(probBadPublicKey, http.StatusBadRequest, "curve %s is not supported", n)
		}
	case *rsa.PublicKey:
		if pk.N.BitLen() < 2048 {
			return nil, problem(probBadPublicKey, http.StatusBadRequest, "RSA keys need at least 2048 bits")
		}
	case ed25519.PublicKey:
	default:
		return nil, problem(probBadPublicKey, http.StatusBadRequest, "key type %T is not supported", k.Key)
	}
	return &k, nil
}

// verifySignature checks the JWS signature with key and returns the payload.
func verifySignature(raw []byte, key *jose.JSONWebKey) ([]byte, *Problem) {
	jws, err := jose.ParseSignedJSON(string(raw), allowedAlgs)
	if err != nil {
		return nil, malformed("the JWS cannot be parsed")
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, malformed("the JWS signature does not verify")
	}
	return payload, nil
}

// accountByKid resolves a kid, which must be an account URL of this
// directory, to a valid account.
func (s *Server) accountByKid(r *http.Request, kid string) (*inventory.ACMEAccount, *Problem) {
	prefix := s.url(r, "acct") + "/"
	id, ok := strings.CutPrefix(kid, prefix)
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil, problem(probAccountDoesNotExist, http.StatusBadRequest, "kid %q is not an account of this directory", kid)
	}
	acct, err := s.store.ACMEAccount(r.Context(), inventory.ACMEAccountFilter{ID: id})
	if errors.Is(err, inventory.ErrNotFound) || (err == nil && acct.Profile != chiProfile(r)) {
		return nil, problem(probAccountDoesNotExist, http.StatusBadRequest, "no such account")
	}
	if err != nil {
		return nil, internal(err)
	}
	if acct.Status != inventory.ACMEAccountValid {
		return nil, accountNotValid(acct.Status)
	}
	return acct, nil
}

// accountNotValid answers every request of a deactivated (or revoked)
// account: RFC 8555 section 7.3.6 wants 401 unauthorized, so a client can
// tell "this account is gone" from "this account may not do that" (403).
func accountNotValid(status string) *Problem {
	return problem(probUnauthorized, http.StatusUnauthorized, "the account is %s", status)
}

// thumbprint is the RFC 7638 SHA-256 thumbprint, base64url.
func thumbprint(k *jose.JSONWebKey) (string, error) {
	b, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decodePayload unmarshals a JSON payload, refusing POST-as-GET.
func decodePayload(req *request, v any) *Problem {
	if req.postAsGet {
		return malformed("this request needs a JSON payload")
	}
	if err := json.Unmarshal(req.payload, v); err != nil {
		return malformed("the payload is not the expected JSON: %v", err)
	}
	return nil
}
