package acme

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/net/idna"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// Order statuses (RFC 8555 section 7.1.6).
const (
	statusPending     = "pending"
	statusReady       = "ready"
	statusProcessing  = "processing"
	statusValid       = "valid"
	statusInvalid     = "invalid"
	statusDeactivated = "deactivated"
	statusExpired     = "expired"
	statusRevoked     = "revoked"
)

const maxIdentifiers = 100

type orderJSON struct {
	Status         string          `json:"status"`
	Expires        string          `json:"expires"`
	Identifiers    []Identifier    `json:"identifiers"`
	NotBefore      string          `json:"notBefore,omitempty"`
	NotAfter       string          `json:"notAfter,omitempty"`
	Error          json.RawMessage `json:"error,omitempty"`
	Authorizations []string        `json:"authorizations"`
	Finalize       string          `json:"finalize"`
	Certificate    string          `json:"certificate,omitempty"`
	Profile        string          `json:"profile,omitempty"`
	Replaces       string          `json:"replaces,omitempty"`
}

func (s *Server) orderObject(r *http.Request, o *inventory.ACMEOrder) orderJSON {
	out := orderJSON{Status: o.Status, Expires: o.Expires.Format(time.RFC3339), Error: o.Error,
		Finalize: s.url(r, "order", o.ID, "finalize"), Profile: o.Profile, Replaces: o.Replaces}
	for _, id := range o.Identifiers {
		out.Identifiers = append(out.Identifiers, Identifier(id))
	}
	for _, z := range o.AuthzIDs {
		out.Authorizations = append(out.Authorizations, s.url(r, "authz", z))
	}
	if o.NotBefore != nil {
		out.NotBefore = o.NotBefore.Format(time.RFC3339)
	}
	if o.NotAfter != nil {
		out.NotAfter = o.NotAfter.Format(time.RFC3339)
	}
	if o.Status == statusValid {
		out.Certificate = s.url(r, "cert", o.ID)
	}
	return out
}

// normalizeIdentifier checks one identifier as a certificate would carry
// it and returns it in canonical form: lower-case DNS names of A-labels
// (a leading "*." only as a whole label), IP addresses as netip prints
// them (RFC 8738). Every refusal happens here, at newOrder, so a client
// never validates names it can then not finalize. The single-label name
// localhost (and *.localhost) is valid only when the directory's profile
// allows it (Profile.Localhost, `mica dev`).
func normalizeIdentifier(id Identifier, localhost bool) (Identifier, *Problem) {
	sub := func(typ, format string, args ...any) *Problem {
		p := problem(typ, http.StatusBadRequest, format, args...)
		p.Identifier = &Identifier{Type: id.Type, Value: id.Value}
		return p
	}
	switch id.Type {
	case "dns":
		v := strings.ToLower(id.Value)
		if localhost && strings.TrimPrefix(v, "*.") == "localhost" {
			return Identifier{Type: "dns", Value: v}, nil
		}
		if msg := dnsIdentifierError(v); msg != "" {
			return id, sub(probRejectedIdentifier, "%q: %s", id.Value, msg)
		}
		return Identifier{Type: "dns", Value: v}, nil
	case "ip":
		ip, err := netip.ParseAddr(id.Value)
		if err != nil || ip.Zone() != "" {
			return id, sub(probMalformed, "%q is not an IP address", id.Value)
		}
		return Identifier{Type: "ip", Value: ip.Unmap().String()}, nil
	}
	return id, sub(probUnsupportedIdentifer, "identifier type %q is not supported", id.Type)
}

// dnsIdentifierError says what is wrong with a lower-cased dns identifier
// value, or "" when it is a name a certificate may carry: no trailing
// dot (certificates never carry one, RFC 5280 section 4.2.1.6), no IP
// address in any spelling, labels of letters, digits and hyphens of at
// most 63 octets, at most 253 octets, and A-labels that are valid
// IDNA2008 (RFC 5891) in their canonical form.
func dnsIdentifierError(v string) string {
	name, _ := strings.CutPrefix(v, "*.")
	switch {
	case v == "":
		return "the name is empty"
	case strings.HasSuffix(v, "."):
		return "a DNS name in a certificate has no trailing dot; send it without one"
	case len(v) > 253:
		return "the name is longer than 253 octets"
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil || numericTLD(name) {
		// lego 4.9 sends IP addresses as type dns; a dns identifier that
		// is an address (or could be read as one, "127.1") is refused so
		// it is never validated or issued as a DNS name.
		return "an IP address is not a DNS name; use an identifier of type ip"
	}
	if strings.Contains(name, "*") {
		return "a wildcard is only allowed as the whole leftmost label (*.example.com)"
	}
	if !strings.Contains(name, ".") {
		return "the name needs at least two labels"
	}
	idn := false
	for label := range strings.SplitSeq(name, ".") {
		switch {
		case label == "":
			return "the name has an empty label"
		case len(label) > 63:
			return "a label is longer than 63 octets"
		case label[0] == '-' || label[len(label)-1] == '-':
			return "a label starts or ends with a hyphen"
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "only letters, digits and hyphens are allowed (internationalized names as xn-- A-labels)"
			}
		}
		if len(label) >= 4 && label[2:4] == "--" {
			if !strings.HasPrefix(label, "xn--") {
				return "a label has hyphens in the third and fourth positions but is not an xn-- A-label"
			}
			idn = true
		}
	}
	if idn {
		// An A-label must decode to a valid U-label and encode back to
		// itself: that refuses bad punycode, labels that decode to plain
		// ASCII and code points IDNA2008 disallows.
		u, err := idna.Registration.ToUnicode(name)
		if err != nil {
			return "an xn-- label is not a valid IDNA2008 A-label"
		}
		if a, err := idna.Registration.ToASCII(u); err != nil || a != name {
			return "an xn-- label is not a valid IDNA2008 A-label"
		}
	}
	return ""
}

// numericTLD reports whether the last label is all digits: no top-level
// domain is, and resolvers read names like "127.1" or "0x7f.1" as IPv4.
func numericTLD(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if last == "" {
		return false
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validDNSName reports whether n (lower case, no trailing dot, no
// wildcard) is a name a certificate may carry.
func validDNSName(n string) bool {
	return !strings.HasPrefix(n, "*.") && dnsIdentifierError(n) == ""
}

// newOrder creates an order with one authorization per identifier
// (RFC 8555 section 7.4).
func (s *Server) newOrder(w http.ResponseWriter, req *request) error {
	var in struct {
		Identifiers []Identifier `json:"identifiers"`
		NotBefore   string       `json:"notBefore"`
		NotAfter    string       `json:"notAfter"`
		Profile     string       `json:"profile"`
		Replaces    string       `json:"replaces"`
	}
	if p := decodePayload(req, &in); p != nil {
		return p
	}
	ctx := req.Context()
	now := s.now()
	if len(in.Identifiers) == 0 || len(in.Identifiers) > maxIdentifiers {
		return malformed("an order needs 1 to %d identifiers", maxIdentifiers)
	}
	var ids []Identifier
	var subs []*Problem
	seen := map[Identifier]bool{}
	prof := s.profile(req.Request)
	for _, raw := range in.Identifiers {
		id, p := normalizeIdentifier(raw, prof.Localhost)
		if p != nil {
			subs = append(subs, p)
			continue
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(subs) > 0 {
		top := problem(subs[0].Type, http.StatusBadRequest, "%d identifier(s) cannot be ordered", len(subs))
		if len(subs) > 1 {
			top.Type = probRejectedIdentifier
			top.Subproblems = subs
		} else {
			top.Detail, top.Identifier = subs[0].Detail, subs[0].Identifier
		}
		return top
	}
	caProfile := prof.CAProfiles[0]
	if in.Profile != "" {
		if !contains(prof.CAProfiles, in.Profile) {
			return problem(probInvalidProfile, http.StatusBadRequest, "profile %q is not offered by this directory", in.Profile)
		}
		caProfile = in.Profile
	}
	o := &inventory.ACMEOrder{ID: randomID(), AccountID: req.account.ID, Profile: caProfile, Status: statusPending,
		Expires: now.Add(s.opts.OrderLifetime), Source: remoteIP(req.Request)}
	if p := s.orderValidity(o, in.NotBefore, in.NotAfter, now); p != nil {
		return p
	}
	if in.Replaces != "" {
		if _, p := s.replacedCert(req, in.Replaces); p != nil {
			return p
		}
		o.Replaces = in.Replaces
	}
	if p := s.checkOrderLimits(ctx, o, ids); p != nil {
		return p
	}
	authzs := make([]inventory.ACMEAuthz, 0, len(ids))
	for _, id := range ids {
		o.Identifiers = append(o.Identifiers, inventory.ACMEIdentifier(id))
		z := inventory.ACMEAuthz{ID: randomID(), Identifier: inventory.ACMEIdentifier(id), Status: statusPending, Expires: o.Expires}
		types := []string{challHTTP01, challDNS01, challTLSALPN01}
		switch {
		case strings.HasPrefix(id.Value, "*."):
			z.Wildcard, z.Identifier.Value = true, strings.TrimPrefix(id.Value, "*.")
			types = []string{challDNS01} // RFC 8555 section 7.1.3
		case id.Type == "ip":
			types = []string{challHTTP01, challTLSALPN01} // RFC 8738 section 7
		}
		for _, t := range types {
			z.Challenges = append(z.Challenges, inventory.ACMEChallenge{ID: randomID(), Type: t, Token: newToken(), Status: statusPending})
		}
		authzs = append(authzs, z)
	}
	if err := s.store.CreateACMEOrder(ctx, o, authzs); err != nil {
		return internal(err)
	}
	s.m.order(statusPending)
	s.audit(ctx, s.event(req, "acme.order.create", "acme-order:"+o.ID), map[string]any{"identifiers": caIdentifiers(o), "profile": o.Profile, "replaces": o.Replaces})
	writeJSON(w, http.StatusCreated, s.url(req.Request, "order", o.ID), s.orderObject(req.Request, o))
	return nil
}

// orderValidity parses notBefore/notAfter and keeps them within the
// issuance profile's cap (the CA checks again when it signs).
func (s *Server) orderValidity(o *inventory.ACMEOrder, nb, na string, now time.Time) *Problem {
	parse := func(field, v string) (*time.Time, *Problem) {
		if v == "" {
			return nil, nil
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, malformed("%s %q is not an RFC 3339 time", field, v)
		}
		return &t, nil
	}
	var p *Problem
	if o.NotBefore, p = parse("notBefore", nb); p != nil {
		return p
	}
	if o.NotAfter, p = parse("notAfter", na); p != nil {
		return p
	}
	cp, _ := s.ca.Profile(o.Profile)
	start := now
	if o.NotBefore != nil {
		if o.NotBefore.After(now.Add(cp.MaxLifetime)) {
			return malformed("notBefore is too far in the future")
		}
		start = *o.NotBefore
	}
	if o.NotAfter != nil {
		if !o.NotAfter.After(start) {
			return malformed("notAfter must be after notBefore")
		}
		if cp.MaxLifetime > 0 && o.NotAfter.Sub(start) > cp.MaxLifetime {
			return malformed("the requested validity is over the profile's maximum of %s", ca.HumanDuration(cp.MaxLifetime))
		}
	}
	return nil
}

// checkOrderLimits applies the per-account and per-IP order limits and
// the per-account, per-name limit on failed validations. Retry-After is
// when the oldest counted order (or failure) leaves the hour.
func (s *Server) checkOrderLimits(ctx context.Context, o *inventory.ACMEOrder, ids []Identifier) *Problem {
	now := s.now()
	since := now.Add(-time.Hour)
	for _, l := range []struct {
		limit int
		f     inventory.ACMEOrderFilter
		what  string
	}{
		{s.opts.Limits.OrdersPerAccountPerHour, inventory.ACMEOrderFilter{AccountID: o.AccountID, Since: since}, "this account"},
		{s.opts.Limits.OrdersPerIPPerHour, inventory.ACMEOrderFilter{Source: o.Source, Since: since}, "this address"},
	} {
		if l.limit <= 0 {
			continue
		}
		n, err := s.store.CountACMEOrders(ctx, l.f)
		if err != nil {
			return internal(err)
		}
		if n < l.limit {
			continue
		}
		p := rateLimited("too many new orders from %s in the last hour (limit %d)", l.what, l.limit)
		f := l.f
		f.Limit = 1000
		if orders, err := s.store.FindACMEOrders(ctx, f); err == nil && len(orders) > 0 {
			p.retryAfter = retryAt(orders[len(orders)-1].CreatedAt.Add(time.Hour), now)
		}
		return p
	}
	if lim := s.opts.Limits.FailedValidationsPerAccountPerNamePerHour; lim > 0 {
		for _, id := range ids {
			value := strings.TrimPrefix(id.Value, "*.")
			zs, err := s.store.ACMEAuthzs(ctx, inventory.ACMEAuthzFilter{AccountID: o.AccountID, Value: value, Status: statusInvalid})
			if err != nil {
				return internal(err)
			}
			var recent []time.Time
			for _, z := range zs {
				if !z.CreatedAt.Before(since) {
					recent = append(recent, z.CreatedAt)
				}
			}
			if len(recent) >= lim {
				p := rateLimited("%d failed validations of %s by this account in the last hour (limit %d)", len(recent), value, lim)
				p.retryAfter = retryAt(slices.MinFunc(recent, time.Time.Compare).Add(time.Hour), now)
				p.Identifier = &Identifier{Type: id.Type, Value: id.Value}
				return p
			}
		}
	}
	return nil
}

// retryAt is a Retry-After in whole seconds until t, at least one.
func retryAt(t, now time.Time) int {
	return max(1, int(t.Sub(now).Seconds()+0.999))
}

// loadOrder returns the account's order with its status brought up to
// date. Another account's order is "not found".
func (s *Server) loadOrder(req *request, id string) (*inventory.ACMEOrder, []inventory.ACMEAuthz, error) {
	o, err := s.store.ACMEOrder(req.Context(), id)
	if errors.Is(err, inventory.ErrNotFound) || (err == nil && o.AccountID != req.account.ID) {
		return nil, nil, notFound("order")
	}
	if err != nil {
		return nil, nil, internal(err)
	}
	zs, err := s.refreshOrder(req.Context(), o)
	return o, zs, err
}

// refreshOrder applies expiry and authorization outcomes to an order
// (RFC 8555 section 7.1.6) and writes any transition back.
func (s *Server) refreshOrder(ctx context.Context, o *inventory.ACMEOrder) ([]inventory.ACMEAuthz, error) {
	zs, err := s.store.ACMEAuthzs(ctx, inventory.ACMEAuthzFilter{OrderID: o.ID})
	if err != nil {
		return nil, internal(err)
	}
	now := s.now()
	for i := range zs {
		if err := s.refreshAuthz(ctx, &zs[i], now); err != nil {
			return nil, err
		}
	}
	for {
		next := o.Status
		switch o.Status {
		case statusPending:
			allValid := true
			for _, z := range zs {
				switch z.Status {
				case statusValid:
				case statusPending:
					allValid = false
				default: // invalid, deactivated, expired, revoked
					next = statusInvalid
				}
			}
			if next == statusPending && allValid {
				next = statusReady
			}
			if next != statusInvalid && now.After(o.Expires) {
				next = statusInvalid
			}
		case statusReady:
			if now.After(o.Expires) {
				next = statusInvalid
			}
		case statusProcessing:
			// A certificate committed by a finalize that died before
			// recording the outcome is linked here, so the polling client
			// gets it at once; everything else about a stuck processing
			// order (expiry included) is the recovery pass's, which knows
			// when no live request can still finish it.
			if o.CertSerial != "" {
				c, err := s.store.Certificate(ctx, o.CertIssuerID, o.CertSerial)
				if err != nil && !errors.Is(err, inventory.ErrNotFound) {
					return nil, internal(err)
				}
				if err == nil && len(c.DER) > 0 {
					next = statusValid
				}
			}
		}
		if next == o.Status {
			return zs, nil
		}
		err := s.store.UpdateACMEOrder(ctx, o.ID, []string{o.Status}, inventory.ACMEOrderUpdate{Status: next})
		if err == nil {
			o.Status = next
			s.m.order(next)
			return zs, nil
		}
		if !errors.Is(err, inventory.ErrConflict) {
			return nil, internal(err)
		}
		// Someone else moved it: read the new status and look again.
		fresh, err := s.store.ACMEOrder(ctx, o.ID)
		if err != nil {
			return nil, internal(err)
		}
		*o = *fresh
	}
}

// order answers POST-as-GET on an order.
func (s *Server) order(w http.ResponseWriter, req *request) error {
	if !req.postAsGet {
		return malformed("orders are read with POST-as-GET")
	}
	o, _, err := s.loadOrder(req, chi.URLParam(req.Request, "id"))
	if err != nil {
		return err
	}
	if o.Status == statusProcessing {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, http.StatusOK, "", s.orderObject(req.Request, o))
	return nil
}
