package acme

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxRedirects follows Let's Encrypt's bound on http-01 redirects.
const maxRedirects = 10

// http01 fetches http://{identifier}:{port}/.well-known/acme-challenge/
// {token} (RFC 8555 section 8.3). Redirects are followed only to http on
// the http-01 port or https on the tls-alpn-01 port (80/443 unless
// configured), at most ten of them; an https redirect target's
// certificate is not verified, since the point of the challenge is that
// the site has none yet.
func (v *validator) http01(ctx context.Context, j job) *Problem {
	host := net.JoinHostPort(j.authz.Identifier.Value, strconv.Itoa(v.opts.HTTP01Port)) // brackets IPv6
	target := "http://" + host + "/.well-known/acme-challenge/" + j.chall.Token
	tr := &http.Transport{
		DialContext:           v.dialer().DialContext,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: v.opts.Timeout,
		Proxy:                 nil,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return &redirectError{fmt.Sprintf("more than %d redirects", maxRedirects)}
		}
		if err := v.redirectAllowed(req.URL); err != nil {
			return &redirectError{err.Error()}
		}
		return nil
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return malformed("cannot build the http-01 request")
	}
	req.Header.Set("User-Agent", "MICA-ACME-validator")
	resp, err := client.Do(req)
	if err != nil {
		var re *redirectError
		if errors.As(err, &re) {
			v.s.log.Info("acme: http-01 redirect refused", "identifier", j.authz.Identifier.Value, "err", err)
			return problem(probConnection, http.StatusBadRequest, "http-01: %s", re.msg)
		}
		return v.connProblem(j, "http-01", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The status only: the URL after redirects may name an address.
		return problem(probUnauthorized, http.StatusForbidden, "http-01: the challenge URL answered HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return v.connProblem(j, "http-01: reading the response", err)
	}
	if got := strings.TrimRight(string(body), " \t\r\n"); got != j.keyAuth {
		return problem(probIncorrectResponse, http.StatusForbidden, "http-01: the response is not the key authorization")
	}
	return nil
}

// redirectError is a redirect the validator refused to follow; its
// message names only the rule broken, never an address.
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return e.msg }

// redirectAllowed checks a redirect target against RFC 8555 section 10.2's
// advice: only http and https, only the challenge ports, no credentials.
func (v *validator) redirectAllowed(u *url.URL) error {
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
		if port != strconv.Itoa(v.opts.HTTP01Port) && port != "80" {
			return fmt.Errorf("redirect to port %s refused (only %d or 80)", port, v.opts.HTTP01Port)
		}
	case "https":
		if port == "" {
			port = "443"
		}
		if port != strconv.Itoa(v.opts.TLSALPN01Port) && port != "443" {
			return fmt.Errorf("redirect to port %s refused (only %d or 443)", port, v.opts.TLSALPN01Port)
		}
	default:
		return fmt.Errorf("redirect to scheme %q refused", u.Scheme)
	}
	if u.User != nil {
		return errors.New("redirect with credentials refused")
	}
	return nil
}
