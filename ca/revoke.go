package ca

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// RevokeRequest asks to revoke one certificate.
type RevokeRequest struct {
	IssuerID string // optional: found from the serial when empty
	Serial   string // hex, any case, colons and spaces allowed
	// Reason is an RFC 5280 reason name (see [RevocationReasons]) or its
	// number; empty means unspecified.
	Reason   string
	Actor    string // who asked
	Protocol string // cli, acme, est, api, ui
	Source   string // remote address or host
}

// RevocationReasons maps the RFC 5280 (section 5.3.1) reason names MICA
// accepts to their CRLReason codes. certificateHold (6) is absent: MICA's
// revocations are permanent. removeFromCRL (8) is for delta CRLs only.
var RevocationReasons = map[string]int{
	"unspecified":          0,
	"keyCompromise":        1,
	"cACompromise":         2,
	"affiliationChanged":   3,
	"superseded":           4,
	"cessationOfOperation": 5,
	"privilegeWithdrawn":   9,
	"aACompromise":         10,
}

// ParseRevocationReason accepts a reason name (any case) or its number and
// returns the canonical name and code. Unknown reasons are ErrBadRevocation.
func ParseRevocationReason(s string) (string, int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "unspecified", 0, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		for name, code := range RevocationReasons {
			if code == n {
				return name, code, nil
			}
		}
	}
	for name, code := range RevocationReasons {
		if strings.EqualFold(name, s) {
			return name, code, nil
		}
	}
	if strings.EqualFold(s, "certificateHold") || s == "6" {
		return "", 0, Errorf(ErrBadRevocation, "revocation reason certificateHold is not supported: revocation is permanent")
	}
	return "", 0, Errorf(ErrBadRevocation, "unknown revocation reason %q (want one of %s)", s, strings.Join(sortedKeys(RevocationReasons), ", "))
}

// Revoke revokes a certificate. It is the only revocation path in MICA:
// ACME, EST, the web UI and the CLI all call it. The revocation and its
// audit event are committed together; then the OCSP response is re-signed
// as revoked, the issuer's CRL is scheduled (see [CA.RunRevocation]), and
// Options.OnRevoke is called.
// Errors: ErrBadRevocation (malformed serial, unknown reason, ambiguous
// serial), ErrNotFound (no such issued certificate), ErrAlreadyRevoked,
// ErrUnavailable (store failure).
func (c *CA) Revoke(ctx context.Context, rr RevokeRequest) (*inventory.Certificate, error) {
	rec, err := c.revoke(ctx, rr)
	if err != nil {
		c.auditRevoke(ctx, rr, err)
		return nil, err
	}
	c.log.Info("certificate revoked", "issuer", rec.IssuerID, "serial", inventory.FormatSerial(rec.Serial), "reason", rec.RevocationReason,
		"actor", rr.Actor, "protocol", rr.Protocol)
	if c.rev != nil {
		c.rev.certRevoked(ctx, rec)
	}
	if c.onRevoke != nil {
		c.onRevoke(ctx, rec)
	}
	return rec, nil
}

func (c *CA) revoke(ctx context.Context, rr RevokeRequest) (*inventory.Certificate, error) {
	serial, err := normalizeSerial(rr.Serial)
	if err != nil {
		return nil, err
	}
	reason, _, err := ParseRevocationReason(rr.Reason)
	if err != nil {
		return nil, err
	}
	cur, err := c.findForRevocation(ctx, rr.IssuerID, serial)
	if err != nil {
		return nil, err
	}
	switch cur.State {
	case inventory.StateRevoked:
		return nil, alreadyRevoked(cur)
	case inventory.StateRequested, inventory.StateFailed:
		return nil, Errorf(ErrNotFound, "certificate %s of issuer %s was never issued", inventory.FormatSerial(serial), cur.IssuerID)
	}

	at := c.now().UTC().Truncate(time.Second)
	details, _ := json.Marshal(map[string]any{"reason": reason, "common_name": cur.CommonName, "sans": cur.SANs})
	ev := c.event(Request{Requester: rr.Actor, Protocol: rr.Protocol, Source: rr.Source},
		"cert.revoke", objectCert(cur.IssuerID, serial), "ok", details)
	rec, err := c.store.RevokeCertificate(ctx, cur.IssuerID, serial, reason, at, ev)
	switch {
	case errors.Is(err, inventory.ErrConflict):
		// Lost a race with another revocation (or the state changed).
		if now, gerr := c.store.Certificate(ctx, cur.IssuerID, serial); gerr == nil && now.State == inventory.StateRevoked {
			return nil, alreadyRevoked(now)
		}
		return nil, Wrap(ErrAlreadyRevoked, err, fmt.Sprintf("certificate %s of issuer %s cannot be revoked in its current state", inventory.FormatSerial(serial), cur.IssuerID))
	case errors.Is(err, inventory.ErrNotFound):
		return nil, Wrap(ErrNotFound, err, fmt.Sprintf("no certificate with serial %s at issuer %s", inventory.FormatSerial(serial), cur.IssuerID))
	case err != nil:
		return nil, Wrap(ErrUnavailable, err, "recording the revocation failed")
	}
	return rec, nil
}

// findForRevocation looks the serial up at the named issuer or, without
// one, at every issuer; a serial known at more than one must be qualified.
func (c *CA) findForRevocation(ctx context.Context, issuerID, serial string) (*inventory.Certificate, error) {
	if issuerID != "" {
		cur, err := c.store.Certificate(ctx, issuerID, serial)
		switch {
		case errors.Is(err, inventory.ErrNotFound):
			return nil, Wrap(ErrNotFound, err, fmt.Sprintf("no certificate with serial %s at issuer %s", inventory.FormatSerial(serial), issuerID))
		case err != nil:
			return nil, Wrap(ErrUnavailable, err, "looking up the certificate failed")
		}
		return cur, nil
	}
	found, err := c.store.FindCertificates(ctx, inventory.CertFilter{Serial: serial, Limit: 10})
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "looking up the certificate failed")
	}
	switch len(found) {
	case 0:
		return nil, Errorf(ErrNotFound, "no certificate with serial %s", inventory.FormatSerial(serial))
	case 1:
		return &found[0], nil
	}
	ids := make([]string, len(found))
	for i, f := range found {
		ids[i] = f.IssuerID
	}
	return nil, Errorf(ErrBadRevocation, "serial %s is known at several issuers (%s); name the issuer", inventory.FormatSerial(serial), strings.Join(ids, ", "))
}

func alreadyRevoked(c *inventory.Certificate) error {
	when := ""
	if c.RevokedAt != nil {
		when = " on " + c.RevokedAt.UTC().Format(time.RFC3339)
	}
	return Errorf(ErrAlreadyRevoked, "certificate %s of issuer %s was already revoked%s (%s)", inventory.FormatSerial(c.Serial), c.IssuerID, when, c.RevocationReason)
}

// auditRevoke records a refused or failed revocation.
func (c *CA) auditRevoke(ctx context.Context, rr RevokeRequest, cause error) {
	outcome := "error"
	switch KindOf(cause) {
	case ErrBadRevocation, ErrNotFound, ErrAlreadyRevoked, ErrUnauthorized:
		outcome = "denied"
	}
	object := "cert:" + rr.IssuerID + "/" + rr.Serial
	if s, err := normalizeSerial(rr.Serial); err == nil {
		object = "cert:" + rr.IssuerID + "/" + s
	}
	details, _ := json.Marshal(map[string]any{"reason": rr.Reason, "kind": KindOf(cause).Error(), "message": UserMessage(cause)})
	ev := c.event(Request{Requester: rr.Actor, Protocol: rr.Protocol, Source: rr.Source}, "cert.revoke", object, outcome, details)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := c.store.AppendEvent(dctx, ev); err != nil {
		c.log.Error("cannot write audit event", "action", ev.Action, "outcome", outcome, "err", err)
	}
}

// normalizeSerial accepts hex in any case with optional colons, spaces and
// "0x" prefix, and returns the inventory form: lower-case, no separators,
// no leading zeros.
func normalizeSerial(s string) (string, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimPrefix(t, "0x")
	t = strings.NewReplacer(":", "", " ", "", "-", "").Replace(t)
	if t == "" {
		return "", Errorf(ErrBadRevocation, "serial number is empty")
	}
	for _, r := range t {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return "", Errorf(ErrBadRevocation, "serial number %q is not hexadecimal", s)
		}
	}
	t = strings.TrimLeft(t, "0")
	if t == "" {
		return "", Errorf(ErrBadRevocation, "serial number %q is zero", s)
	}
	if len(t) > 40 {
		return "", Errorf(ErrBadRevocation, "serial number %q is longer than 20 octets", s)
	}
	return t, nil
}
