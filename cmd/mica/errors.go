package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// Exit codes, documented in `mica help` and docs/cli.md. Scripts branch on
// them, so their meaning never changes; new kinds get new numbers.
const (
	exitOK          = 0
	exitInternal    = 1
	exitUsage       = 2
	exitRefused     = 3
	exitUnavailable = 4
	exitNotFound    = 5
	exitConfig      = 6
)

// cliError is an error with its exit code and the message for the user;
// err, when set, is the internal cause shown only with --debug.
type cliError struct {
	code int
	msg  string
	err  error
}

func (e *cliError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *cliError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

func configErrorf(format string, args ...any) error {
	return &cliError{code: exitConfig, msg: fmt.Sprintf(format, args...)}
}

// withCode wraps err so it reports code, keeping err's text as the message.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &cliError{code: code, msg: err.Error()}
}

// kindCodes maps the ca error vocabulary to exit codes.
var kindCodes = map[error]int{
	ca.ErrBadCSR:         exitRefused,
	ca.ErrWeakKey:        exitRefused,
	ca.ErrPolicy:         exitRefused,
	ca.ErrLifetime:       exitRefused,
	ca.ErrUnknownProfile: exitRefused,
	ca.ErrLint:           exitRefused,
	ca.ErrAlreadyRevoked: exitRefused,
	ca.ErrBadRevocation:  exitRefused,
	ca.ErrRateLimited:    exitRefused,
	ca.ErrUnauthorized:   exitRefused,
	ca.ErrNotFound:       exitNotFound,
	ca.ErrUnavailable:    exitUnavailable,
	ca.ErrConfig:         exitConfig,
	ca.ErrInternal:       exitInternal,
}

// classify returns the exit code and the one-line message for err. Only
// messages meant for users are shown: ca's Msg, our own cliError text, or
// the text of errors from packages whose contract is to never carry
// secrets (hsm, inventory, config).
func classify(err error) (int, string) {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code, ce.msg
	}
	var caErr *ca.Error
	if errors.As(err, &caErr) {
		code := kindCodes[ca.KindOf(err)]
		msg := ca.UserMessage(err)
		if errors.Is(err, hsm.ErrWrongPIN) {
			// ca says the key "cannot be opened"; the operator needs to
			// know why.
			return exitUnavailable, msg + ": wrong PIN or passphrase"
		}
		if code == 0 {
			code = exitInternal
		}
		return code, msg
	}
	switch {
	case errors.Is(err, hsm.ErrWrongPIN):
		return exitUnavailable, "wrong PIN or passphrase for the key backend"
	case errors.Is(err, hsm.ErrNotFound), errors.Is(err, inventory.ErrNotFound):
		return exitNotFound, err.Error()
	case errors.Is(err, hsm.ErrUnsupported):
		return exitConfig, err.Error()
	}
	return exitInternal, err.Error()
}

// report prints err as "mica: message" and returns its exit code. With
// debug, the full error chain follows on a second line.
func report(e *env, err error, debug bool) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errHelp) {
		return exitOK
	}
	code, msg := classify(err)
	fmt.Fprintf(e.stderr, "mica: %s\n", strings.TrimSpace(msg))
	if debug && err.Error() != msg {
		fmt.Fprintf(e.stderr, "mica: detail: %v\n", err)
	}
	return code
}
