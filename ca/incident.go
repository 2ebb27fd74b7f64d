package ca

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// IncidentRequest selects certificates to revoke together, after a key
// or an account leaked. At least one selector must be set: an incident
// never means "every certificate" by accident.
type IncidentRequest struct {
	PublicKeySHA256 string   // hex SHA-256 of the SubjectPublicKeyInfo
	IssuerID        string   // every certificate of an issuer (e.g. CA compromise)
	Requester       string   // an ACME account URL, EST user, CLI user
	Profile         string   // a profile
	Serials         []string // an explicit list
	Reason          string   // RFC 5280 name; keyCompromise also blocks the keys
	// BlockKeys blocks the public keys of every matched certificate even
	// when the reason is not keyCompromise.
	BlockKeys bool
	Actor     string
	Protocol  string
	Source    string
}

// IncidentResult is what an incident run found and did.
type IncidentResult struct {
	Matched     []inventory.Certificate // without DER
	Revoked     []string                // "issuer/serial"
	Failed      map[string]string       // "issuer/serial" → why
	BlockedKeys []string                // newly blocked public key hashes
}

// maxIncident bounds one incident run; a larger one is a mistake worth a
// second look (or several runs by issuer).
const maxIncident = 1_000_000

// IncidentMatches returns the issued (unexpired) and superseded
// certificates an incident request selects, without changing anything:
// the dry run.
func (c *CA) IncidentMatches(ctx context.Context, ir IncidentRequest) ([]inventory.Certificate, error) {
	if ir.PublicKeySHA256 == "" && ir.IssuerID == "" && ir.Requester == "" && ir.Profile == "" && len(ir.Serials) == 0 {
		return nil, Errorf(ErrBadRevocation, "an incident needs a selector: public key hash, issuer, account, profile or serials")
	}
	base := inventory.CertFilter{
		PublicKeySHA256: ir.PublicKeySHA256, IssuerID: ir.IssuerID, Requester: ir.Requester, Profile: ir.Profile,
		States: []inventory.State{inventory.StateIssued, inventory.StateSuperseded}, Now: c.now(), Limit: 1000,
	}
	chunks := [][]string{nil}
	if len(ir.Serials) > 0 {
		chunks = nil
		for s := range slices.Chunk(ir.Serials, 1000) {
			chunks = append(chunks, s)
		}
	}
	var out []inventory.Certificate
	for _, chunk := range chunks {
		f := base
		f.Serials = chunk
		for {
			page, err := c.store.FindCertificates(ctx, f)
			if errors.Is(err, inventory.ErrInvalid) {
				return nil, Wrap(ErrBadRevocation, err, "the incident selection is malformed")
			}
			if err != nil {
				return nil, Wrap(ErrUnavailable, err, "selecting the certificates failed")
			}
			for _, ct := range page {
				ct.DER = nil
				out = append(out, ct)
			}
			if len(out) > maxIncident {
				return nil, Errorf(ErrBadRevocation, "the selection matches more than %d certificates; narrow it", maxIncident)
			}
			if len(page) < f.Limit {
				break
			}
			f.Before = page[len(page)-1].ID
		}
	}
	return out, nil
}

// IncidentRevoke revokes every certificate IncidentMatches selects through
// [CA.Revoke] (the one revocation path), blocks their public keys for
// keyCompromise (or BlockKeys), signs the affected issuers' CRLs once at
// the end, and writes one "incident.revoke" audit event listing all of it.
// Certificates that fail are reported in Failed; the run goes on.
func (c *CA) IncidentRevoke(ctx context.Context, ir IncidentRequest) (*IncidentResult, error) {
	reason, _, err := ParseRevocationReason(ir.Reason)
	if err != nil {
		return nil, err
	}
	matched, err := c.IncidentMatches(ctx, ir)
	if err != nil {
		return nil, err
	}
	res := &IncidentResult{Matched: matched, Failed: map[string]string{}}
	issuers := map[string]bool{}
	keys := map[string]bool{}
	if ir.PublicKeySHA256 != "" {
		keys[ir.PublicKeySHA256] = true
	}
	for _, ct := range matched {
		name := ct.IssuerID + "/" + ct.Serial
		_, err := c.Revoke(ctx, RevokeRequest{IssuerID: ct.IssuerID, Serial: ct.Serial, Reason: reason,
			Actor: ir.Actor, Protocol: ir.Protocol, Source: ir.Source})
		if err != nil && KindOf(err) != ErrAlreadyRevoked {
			res.Failed[name] = UserMessage(err)
			continue
		}
		res.Revoked = append(res.Revoked, name)
		issuers[ct.IssuerID] = true
		if ct.PublicKeySHA256 != "" {
			keys[ct.PublicKeySHA256] = true
		}
	}
	if reason == "keyCompromise" || ir.BlockKeys {
		for h := range keys {
			err := c.BlockKey(ctx, h, "incident: "+reason, ir.Actor, ir.Protocol, ir.Source)
			switch {
			case err == nil:
				res.BlockedKeys = append(res.BlockedKeys, h)
			case KindOf(err) == ErrAlreadyRevoked: // already blocked
			default:
				res.Failed["key:"+h] = UserMessage(err)
			}
		}
		slices.Sort(res.BlockedKeys)
	}
	if c.rev != nil {
		for id := range issuers {
			if err := c.GenerateCRLs(ctx, id); err != nil {
				res.Failed["crl:"+id] = UserMessage(err)
			}
		}
	}
	details, _ := json.Marshal(map[string]any{
		"selector": map[string]any{"pubkey_sha256": ir.PublicKeySHA256, "issuer": ir.IssuerID, "requester": ir.Requester,
			"profile": ir.Profile, "serials": len(ir.Serials)},
		"reason": reason, "matched": len(matched), "revoked": res.Revoked, "failed": res.Failed, "blocked_keys": res.BlockedKeys,
	})
	outcome := "ok"
	if len(res.Failed) > 0 {
		outcome = "error"
	}
	ev := c.event(Request{Requester: ir.Actor, Protocol: ir.Protocol, Source: ir.Source}, "incident.revoke", "incident", outcome, details)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := c.store.AppendEvent(dctx, ev); err != nil {
		return res, Wrap(ErrUnavailable, err, "the incident was carried out but its audit event could not be written")
	}
	return res, nil
}

// BlockKey puts a public key (hex SHA-256 of its SubjectPublicKeyInfo) on
// the blocklist, so Issue refuses it from then on, with an audit event.
// Blocking a blocked key is ErrAlreadyRevoked.
func (c *CA) BlockKey(ctx context.Context, pubkeySHA256, reason, actor, protocol, source string) error {
	if c.rev == nil {
		return Errorf(ErrConfig, "revocation is not configured")
	}
	details, _ := json.Marshal(map[string]string{"reason": reason})
	ev := c.event(Request{Requester: actor, Protocol: protocol, Source: source}, "key.block", "", "ok", details)
	err := c.rev.store.BlockKey(ctx, inventory.BlockedKey{PublicKeySHA256: pubkeySHA256, Reason: reason, Actor: actor}, ev)
	switch {
	case errors.Is(err, inventory.ErrDuplicate):
		return Wrap(ErrAlreadyRevoked, err, fmt.Sprintf("public key %s is already blocked", pubkeySHA256))
	case errors.Is(err, inventory.ErrInvalid):
		return Wrap(ErrBadRevocation, err, "the public key hash must be 64 hex digits (SHA-256 of the SubjectPublicKeyInfo)")
	case err != nil:
		return Wrap(ErrUnavailable, err, "blocking the key failed")
	}
	return nil
}

// UnblockKey removes a public key from the blocklist, with an audit event.
// Errors: ErrNotFound when it was not blocked.
func (c *CA) UnblockKey(ctx context.Context, pubkeySHA256, actor, protocol, source string) error {
	if c.rev == nil {
		return Errorf(ErrConfig, "revocation is not configured")
	}
	ev := c.event(Request{Requester: actor, Protocol: protocol, Source: source}, "key.unblock", "", "ok", nil)
	err := c.rev.store.UnblockKey(ctx, pubkeySHA256, ev)
	switch {
	case errors.Is(err, inventory.ErrNotFound):
		return Wrap(ErrNotFound, err, fmt.Sprintf("public key %s is not blocked", pubkeySHA256))
	case errors.Is(err, inventory.ErrInvalid):
		return Wrap(ErrBadRevocation, err, "the public key hash must be 64 hex digits (SHA-256 of the SubjectPublicKeyInfo)")
	case err != nil:
		return Wrap(ErrUnavailable, err, "unblocking the key failed")
	}
	return nil
}
