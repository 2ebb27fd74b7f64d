package acme

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
)

// dns01 looks up TXT _acme-challenge.{name} through the configured
// resolver (RFC 8555 section 8.4) and wants base64url(SHA-256(key
// authorization)) among the values.
func (v *validator) dns01(ctx context.Context, j job) *Problem {
	sum := sha256.Sum256([]byte(j.keyAuth))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	name := "_acme-challenge." + j.authz.Identifier.Value + "."
	txts, err := v.resolver.LookupTXT(ctx, name)
	if err != nil {
		// The raw error names the resolver's address: log it, tell the
		// requester only what happened to the lookup.
		v.s.log.Info("acme: dns-01 lookup failed", "name", name, "account", j.account, "err", err)
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsNotFound:
			return problem(probUnauthorized, http.StatusForbidden, "dns-01: no TXT record found at %s", name)
		case errors.As(err, &de) && de.IsTimeout, errors.Is(err, context.DeadlineExceeded):
			return problem(probDNS, http.StatusBadRequest, "dns-01: looking up TXT %s: timeout", name)
		}
		return problem(probDNS, http.StatusBadRequest, "dns-01: looking up TXT %s failed", name)
	}
	if len(txts) == 0 {
		return problem(probUnauthorized, http.StatusForbidden, "dns-01: no TXT record found at %s", name)
	}
	for _, t := range txts {
		if t == want {
			return nil
		}
	}
	return problem(probIncorrectResponse, http.StatusForbidden, "dns-01: none of the %d TXT records at %s matches", len(txts), name)
}
