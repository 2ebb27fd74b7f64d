package acme

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// ACME error types (RFC 8555 section 6.7, RFC 9773, draft-aaron-acme-profiles).
const (
	errNS                    = "urn:ietf:params:acme:error:"
	probAccountDoesNotExist  = errNS + "accountDoesNotExist"
	probAlreadyRevoked       = errNS + "alreadyRevoked"
	probBadCSR               = errNS + "badCSR"
	probBadNonce             = errNS + "badNonce"
	probBadPublicKey         = errNS + "badPublicKey"
	probBadRevocationReason  = errNS + "badRevocationReason"
	probBadSignatureAlg      = errNS + "badSignatureAlgorithm"
	probConnection           = errNS + "connection"
	probDNS                  = errNS + "dns"
	probExternalAccountReq   = errNS + "externalAccountRequired"
	probIncorrectResponse    = errNS + "incorrectResponse"
	probInvalidContact       = errNS + "invalidContact"
	probMalformed            = errNS + "malformed"
	probOrderNotReady        = errNS + "orderNotReady"
	probRateLimited          = errNS + "rateLimited"
	probRejectedIdentifier   = errNS + "rejectedIdentifier"
	probServerInternal       = errNS + "serverInternal"
	probTLS                  = errNS + "tls"
	probUnauthorized         = errNS + "unauthorized"
	probUnsupportedContact   = errNS + "unsupportedContact"
	probUnsupportedIdentifer = errNS + "unsupportedIdentifier"
	probInvalidProfile       = errNS + "invalidProfile"
	probConflict             = errNS + "conflict" // RFC 9773 replaced-certificate conflicts
	probCAA                  = errNS + "caa"
)

// Identifier is an ACME identifier as it appears on the wire.
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Problem is an RFC 7807 problem document. It is also the error type the
// handlers return: whatever else goes wrong is turned into one by
// problemFor before it reaches the client.
type Problem struct {
	Type        string      `json:"type"`
	Detail      string      `json:"detail,omitempty"`
	Status      int         `json:"status"`
	Identifier  *Identifier `json:"identifier,omitempty"`
	Subproblems []*Problem  `json:"subproblems,omitempty"`
	Algorithms  []string    `json:"algorithms,omitempty"` // badSignatureAlgorithm (RFC 8555 section 6.2)

	retryAfter int    // seconds; rateLimited, processing
	location   string // conflict: the existing account
	cause      error  // for the log only
}

func (p *Problem) Error() string {
	if p.cause != nil {
		return fmt.Sprintf("%s: %s: %v", p.Type, p.Detail, p.cause)
	}
	return p.Type + ": " + p.Detail
}

func (p *Problem) Unwrap() error { return p.cause }

func problem(typ string, status int, format string, args ...any) *Problem {
	return &Problem{Type: typ, Status: status, Detail: fmt.Sprintf(format, args...)}
}

func malformed(format string, args ...any) *Problem {
	return problem(probMalformed, http.StatusBadRequest, format, args...)
}

func unauthorized(format string, args ...any) *Problem {
	return problem(probUnauthorized, http.StatusForbidden, format, args...)
}

// internal is a failure the client cannot fix. When the cause is the
// database being unreachable it is 503 with Retry-After, as finalize
// answers a CA that cannot reach its store: the request will succeed
// after the outage, and clients back off instead of giving up.
func internal(cause error) *Problem {
	if inventory.IsUnavailable(cause) {
		p := problem(probServerInternal, http.StatusServiceUnavailable, "the CA is temporarily unavailable")
		p.retryAfter, p.cause = 30, cause
		return p
	}
	p := problem(probServerInternal, http.StatusInternalServerError, "internal error")
	p.cause = cause
	return p
}

// notFound is malformed with 404, as Boulder answers for unknown or
// foreign resources: a client cannot tell another account's order from
// one that does not exist.
func notFound(what string) *Problem {
	return problem(probMalformed, http.StatusNotFound, "%s not found", what)
}

// caProblem translates the ca package's error vocabulary. The detail is
// the ca's user message, written for the requester.
func caProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	msg := ca.UserMessage(err)
	var out *Problem
	switch ca.KindOf(err) {
	case ca.ErrBadCSR, ca.ErrWeakKey:
		out = problem(probBadCSR, http.StatusBadRequest, "%s", msg)
	case ca.ErrPolicy:
		out = problem(probRejectedIdentifier, http.StatusBadRequest, "%s", msg)
	case ca.ErrLifetime:
		out = malformed("%s", msg)
	case ca.ErrUnknownProfile:
		out = problem(probInvalidProfile, http.StatusBadRequest, "%s", msg)
	case ca.ErrNotFound:
		out = problem(probMalformed, http.StatusNotFound, "%s", msg)
	case ca.ErrAlreadyRevoked:
		out = problem(probAlreadyRevoked, http.StatusBadRequest, "%s", msg)
	case ca.ErrBadRevocation:
		out = problem(probBadRevocationReason, http.StatusBadRequest, "%s", msg)
	case ca.ErrRateLimited:
		out = problem(probRateLimited, http.StatusTooManyRequests, "%s", msg)
		out.retryAfter = 60
	case ca.ErrUnauthorized:
		out = unauthorized("%s", msg)
	case ca.ErrUnavailable:
		out = problem(probServerInternal, http.StatusServiceUnavailable, "the CA is temporarily unavailable")
		out.retryAfter = 30
	default: // ErrLint, ErrInternal, ErrConfig: nothing the client can fix
		out = problem(probServerInternal, http.StatusInternalServerError, "internal error")
	}
	out.cause = err
	return out
}

// writeProblem sends p as application/problem+json.
func writeProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	if p.location != "" {
		h.Set("Location", p.location)
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
