package acme

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// Validation failures are told to the requester in a few fixed words —
// what failed, never where: a raw dial error names the address and port
// the CA connected to ("dial tcp 10.0.0.5:80: connect: connection
// refused"), which would let anyone who can create an order map the
// networks the CA can reach. The full error goes to the log.

// connProblem turns a connection failure of challenge type what into a
// problem document with a fixed description, and logs the raw error.
func (v *validator) connProblem(j job, what string, err error) *Problem {
	v.s.log.Info("acme: validation connection failed", "type", j.chall.Type, "identifier", j.authz.Identifier.Value,
		"account", j.account, "err", err)
	if errors.Is(err, errDeniedNetwork) {
		return problem(probRejectedIdentifier, http.StatusBadRequest, "%s: %v", what, errDeniedNetwork)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		// The name (the identifier or a redirect's host) is the
		// requester's own; the resolver's address (dnsErr.Server) is not.
		switch {
		case dnsErr.IsNotFound:
			return problem(probDNS, http.StatusBadRequest, "%s: no address record found for %s", what, dnsErr.Name)
		case dnsErr.IsTimeout:
			return problem(probDNS, http.StatusBadRequest, "%s: DNS lookup of %s: timeout", what, dnsErr.Name)
		}
		return problem(probDNS, http.StatusBadRequest, "%s: DNS lookup of %s failed", what, dnsErr.Name)
	}
	d, tlsFailure := connFailure(err)
	if tlsFailure {
		return problem(probTLS, http.StatusBadRequest, "%s: %s", what, d)
	}
	return problem(probConnection, http.StatusBadRequest, "%s: %s", what, d)
}

// connFailure names a connection error in words that carry no address,
// and says whether it was the TLS handshake that failed.
func connFailure(err error) (string, bool) {
	var ne net.Error
	var op *net.OpError
	var rec tls.RecordHeaderError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout", false
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", false
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer", false
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable", false
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable", false
	case errors.As(err, &op) && op.Op == "remote error":
		return "TLS handshake failed: the server sent an alert", true
	case errors.As(err, &rec):
		return "TLS handshake failed: the server does not speak TLS", true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection closed before a response", false
	case strings.Contains(err.Error(), "tls: "):
		return "TLS handshake failed", true
	}
	return "connection failed", false
}
