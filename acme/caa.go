package acme

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/mica-pki/mica/inventory"
)

// CAA checking (RFC 8659) with the accounturi and validationmethods
// parameters of RFC 8657. A profile turns it on by listing the issuer
// domain names that identify this CA in CAA records (caa_identities). It
// runs when a challenge for a DNS identifier has succeeded, and again at
// finalize, so the records in force shortly before issuance decide. IP
// identifiers have no CAA (RFC 8738 section 7).

// caaTimeout bounds one CAA check, tree climbing included.
const caaTimeout = 10 * time.Second

// caaTags are the property tags this CA understands; a critical property
// with any other tag forbids issuance (RFC 8659 section 4.1).
var caaTags = map[string]bool{"issue": true, "issuewild": true, "iodef": true, "issuemail": true, "issuevmc": true,
	"contactemail": true, "contactphone": true}

// caaChecker looks CAA records up through one DNS server.
type caaChecker struct {
	server string // HOST:PORT
	client *dns.Client
	log    *slog.Logger // raw lookup errors; nil: not logged
}

func newCAAChecker(resolver string) (*caaChecker, error) {
	if resolver == "" {
		cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(cfg.Servers) == 0 {
			return nil, fmt.Errorf("acme: CAA checking needs a DNS resolver: set validation.dns_resolver")
		}
		resolver = net.JoinHostPort(cfg.Servers[0], cfg.Port)
	}
	return &caaChecker{server: resolver, client: &dns.Client{Timeout: caaTimeout}}, nil
}

// lookup returns the CAA records at name, following the server's CNAME
// answers. A name that does not exist has none.
func (c *caaChecker) lookup(ctx context.Context, name string) ([]*dns.CAA, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeCAA)
	m.SetEdns0(4096, false)
	r, _, err := c.client.ExchangeContext(ctx, m, c.server)
	if err == nil && r.Truncated {
		tcp := *c.client
		tcp.Net = "tcp"
		r, _, err = tcp.ExchangeContext(ctx, m, c.server)
	}
	if err != nil {
		return nil, err
	}
	switch r.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return nil, &caaRcodeError{name: name, rcode: dns.RcodeToString[r.Rcode]}
	}
	var out []*dns.CAA
	for _, rr := range r.Answer {
		if caa, ok := rr.(*dns.CAA); ok {
			out = append(out, caa)
		}
	}
	return out, nil
}

// caaRcodeError is a CAA query answered with an error code other than
// NXDOMAIN.
type caaRcodeError struct{ name, rcode string }

func (e *caaRcodeError) Error() string { return "CAA query for " + e.name + " answered " + e.rcode }

// relevant climbs from name towards the root and returns the first
// non-empty CAA record set (RFC 8659 section 3), nil when there is none.
func (c *caaChecker) relevant(ctx context.Context, name string) ([]*dns.CAA, error) {
	labels := dns.SplitDomainName(name)
	for i := range labels {
		set, err := c.lookup(ctx, strings.Join(labels[i:], "."))
		if err != nil {
			return nil, err
		}
		if len(set) > 0 {
			return set, nil
		}
	}
	return nil, nil
}

// caaRequest is one identifier to check.
type caaRequest struct {
	name       string // DNS name without "*."
	wildcard   bool
	method     string // the challenge type that validated it
	accountURI string // empty: accounturi parameters cannot match
}

// check decides whether this CA may issue for req under identities. It
// returns a caa problem (or dns, when the lookup fails) naming the
// identifier, nil when issuance is permitted.
func (c *caaChecker) check(ctx context.Context, identities []string, req caaRequest) *Problem {
	ident := &Identifier{Type: "dns", Value: req.name}
	if req.wildcard {
		ident.Value = "*." + req.name
	}
	ctx, cancel := context.WithTimeout(ctx, caaTimeout)
	defer cancel()
	set, err := c.relevant(ctx, req.name)
	if err != nil {
		// A network error names the resolver's address: the requester
		// learns only the DNS answer code or that the lookup timed out.
		if c.log != nil {
			c.log.Info("acme: CAA lookup failed", "name", req.name, "err", err)
		}
		what := "failed"
		var rc *caaRcodeError
		var ne net.Error
		switch {
		case errors.As(err, &rc):
			what = "answered " + rc.rcode
		case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
			what = "timed out"
		}
		p := problem(probDNS, http.StatusBadRequest, "CAA lookup for %s %s", req.name, what)
		p.Identifier = ident
		return p
	}
	if reason := caaPermits(set, identities, req); reason != "" {
		p := problem(probCAA, http.StatusForbidden, "CAA records for %s forbid issuance: %s", req.name, reason)
		p.Identifier = ident
		return p
	}
	return nil
}

// caaPermits applies a relevant record set; it returns why issuance is
// refused, or "" when it is permitted.
func caaPermits(set []*dns.CAA, identities []string, req caaRequest) string {
	var issue, wild []*dns.CAA
	for _, rr := range set {
		tag := strings.ToLower(rr.Tag)
		if !caaTags[tag] {
			if rr.Flag&128 != 0 {
				return fmt.Sprintf("critical property %q is not understood", rr.Tag)
			}
			continue
		}
		switch tag {
		case "issue":
			issue = append(issue, rr)
		case "issuewild":
			wild = append(wild, rr)
		}
	}
	props := issue
	if req.wildcard && len(wild) > 0 {
		props = wild // RFC 8659 section 4.3
	}
	if len(props) == 0 {
		return "" // no property restricts this kind of name
	}
	why := "no issue property names this CA"
	for _, rr := range props {
		domain, params, ok := parseCAAValue(rr.Value)
		if !ok || domain == "" || !containsFold(identities, domain) {
			continue
		}
		if u, ok := params["accounturi"]; ok && u != req.accountURI {
			why = "the accounturi parameter names another account"
			continue
		}
		if m, ok := params["validationmethods"]; ok && !containsFold(strings.Split(m, ","), req.method) {
			why = fmt.Sprintf("validationmethods does not include %s", req.method)
			continue
		}
		return ""
	}
	return why
}

// parseCAAValue splits an issue or issuewild value (RFC 8659 section
// 4.2) into the issuer domain name and its parameters. ok is false when
// the value does not parse, which makes the property match no CA.
func parseCAAValue(v string) (domain string, params map[string]string, ok bool) {
	parts := strings.Split(v, ";")
	domain = strings.TrimSpace(parts[0])
	params = map[string]string{}
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, val, found := strings.Cut(p, "=")
		if !found || strings.TrimSpace(k) == "" {
			return "", nil, false
		}
		params[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(val)
	}
	return strings.TrimSuffix(strings.ToLower(domain), "."), params, true
}

func containsFold(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSuffix(strings.TrimSpace(x), "."), v) {
			return true
		}
	}
	return false
}

// caaOrder checks every DNS identifier of a ready order at finalize with
// the challenge type that validated it; several failures come back as
// subproblems of one caa problem.
func (s *Server) caaOrder(ctx context.Context, prof Profile, accountURI string, zs []inventory.ACMEAuthz) *Problem {
	if len(prof.CAAIdentities) == 0 || s.val.caa == nil {
		return nil
	}
	var subs []*Problem
	for _, z := range zs {
		if z.Identifier.Type != "dns" {
			continue
		}
		method := ""
		for _, c := range z.Challenges {
			if c.Status == statusValid {
				method = c.Type
			}
		}
		if p := s.val.caa.check(ctx, prof.CAAIdentities, caaRequest{name: z.Identifier.Value, wildcard: z.Wildcard,
			method: method, accountURI: accountURI}); p != nil {
			subs = append(subs, p)
		}
	}
	switch len(subs) {
	case 0:
		return nil
	case 1:
		return subs[0]
	}
	top := problem(probCAA, http.StatusForbidden, "CAA records forbid issuance for %d identifiers", len(subs))
	top.Subproblems = subs
	return top
}
