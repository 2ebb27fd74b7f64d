package ca

import (
	"errors"
	"fmt"
)

// The error vocabulary of MICA. Everything below ca returns errors that wrap
// exactly one of these kinds; the front ends translate the kind (ACME problem
// types, EST status codes, web pages, CLI exit codes) and show Error.Msg to
// the user while logging the full error.
var (
	ErrBadCSR         = errors.New("bad CSR")               // malformed, bad signature, unparsable
	ErrWeakKey        = errors.New("key not allowed")       // key type/size outside policy, weak or unknown curve
	ErrPolicy         = errors.New("not allowed by policy") // identifier outside profile, blocked key
	ErrLifetime       = errors.New("lifetime not allowed")  // requested validity over the profile's cap
	ErrUnknownProfile = errors.New("unknown profile")
	ErrLint           = errors.New("certificate failed lint")
	ErrNotFound       = errors.New("not found")
	ErrAlreadyRevoked = errors.New("already revoked")
	ErrBadRevocation  = errors.New("bad revocation request") // unknown reason code etc.
	ErrRateLimited    = errors.New("rate limited")
	ErrUnauthorized   = errors.New("unauthorized")
	ErrUnavailable    = errors.New("CA unavailable") // key offline, wrong PIN, HSM gone
	ErrInternal       = errors.New("internal error")
	// ErrConfig is an operator mistake found at start or init: an invalid
	// profile, a missing issuer, a key that does not match its certificate.
	// Front ends never see it; cmd/mica reports it and exits.
	ErrConfig = errors.New("invalid configuration")
)

// Error carries a kind from the list above, a message safe to show to the
// requester, and the internal cause for the log. It never holds secrets.
type Error struct {
	Kind error  // one of the Err* values
	Msg  string // user-facing, names the reason
	Err  error  // internal cause, may be nil
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Msg)
}

// Unwrap exposes both the kind and the cause to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// Errorf builds an *Error of the given kind with a formatted user message.
func Errorf(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error of the given kind around an internal cause.
func Wrap(kind error, cause error, msg string) *Error {
	return &Error{Kind: kind, Msg: msg, Err: cause}
}

// KindOf returns the vocabulary kind of err, or ErrInternal.
func KindOf(err error) error {
	for _, k := range []error{ErrBadCSR, ErrWeakKey, ErrPolicy, ErrLifetime, ErrUnknownProfile, ErrLint,
		ErrNotFound, ErrAlreadyRevoked, ErrBadRevocation, ErrRateLimited, ErrUnauthorized, ErrUnavailable, ErrConfig} {
		if errors.Is(err, k) {
			return k
		}
	}
	return ErrInternal
}

// UserMessage returns the text to show the requester for err.
func UserMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return "internal error"
}
