package ca

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// maxSerialAttempts bounds retries on a serial collision. With 128 random
// bits a second attempt is already a sign of a broken random source.
const maxSerialAttempts = 3

// Issue checks req against its profile and, if it passes, issues, records
// and returns the certificate. The certificate is committed to the store
// before Issue returns it; on any error nothing is returned and nothing is
// recorded as issued. Refusals are audited with outcome "denied".
func (c *CA) Issue(ctx context.Context, req Request) (*Issued, error) {
	pol, ok := c.profiles[req.Profile]
	if !ok {
		err := Errorf(ErrUnknownProfile, "unknown profile %q (known: %s)", req.Profile, strings.Join(c.names, ", "))
		c.audit(ctx, req, req.Profile, "", err)
		return nil, err
	}
	return c.issue(ctx, req, pol)
}

// MaxIssueDuration bounds one issuance from the check to the commit. The
// deadline is what makes crash recovery safe: a reservation older than
// this can no longer be completed (CompleteCertificate runs under the
// expired context and fails), so the recovery pass may mark it failed
// without racing a live replica. Signing one certificate takes
// milliseconds, even on a network HSM under load a few seconds.
const MaxIssueDuration = 20 * time.Second

func (c *CA) issue(ctx context.Context, req Request, pol *policy) (*Issued, error) {
	ctx, cancel := context.WithTimeout(ctx, MaxIssueDuration)
	defer cancel()
	now := c.now()
	// The issuing CA is read once: a rotation that switches issuance while
	// this request runs does not change who signs it.
	a := c.cur()

	// Step 1: check. Everything that depends only on the request and the
	// profile is decided here, before any random serial is drawn, row
	// written or key touched, so a refusal is cheap and leaves no trace
	// but its audit event.
	chk, err := check(req, pol, a.issuerCert, now)
	if err == nil {
		err = c.checkBlockedKey(ctx, chk)
	}
	if err != nil {
		c.audit(ctx, req, pol.Name, "", err)
		return nil, err
	}

	var (
		tmpl   *x509.Certificate
		tbs    []byte
		rec    *inventory.Certificate
		serial string
	)
	for attempt := 1; ; attempt++ {
		// Step 2: build and lint. The certificate is built in full and
		// signed by a stand-in issuer with a throw-away key, and that copy
		// is linted. The HSM signs only what passed lint, and step 4
		// checks that it signed exactly that.
		sn, err := newSerial()
		if err != nil {
			return nil, c.fail(ctx, req, pol.Name, Wrap(ErrInternal, err, "drawing a serial number failed"))
		}
		serial = serialHex(sn)
		tmpl, err = buildLeaf(chk, leafParams{
			serial: sn, issuer: a.issuerCert, sigAlg: a.sigAlg,
			urls: c.certCRLURLs(urlsFor(c.urls, a.issuer.ID, true), a.issuer.ID, sn), profile: pol,
		})
		if err != nil {
			return nil, c.fail(ctx, req, pol.Name, err)
		}
		var warns []lintFinding
		tbs, warns, err = a.lintIssuer.lint("certificate", tmpl)
		if err != nil {
			return nil, c.fail(ctx, req, pol.Name, err)
		}
		if len(warns) > 0 {
			c.log.Warn("issued certificate has lint warnings", "issuer", a.issuer.ID, "serial", inventory.FormatSerial(serial), "profile", pol.Name, "lints", fmt.Sprint(warns))
		}

		// Step 3: record. The serial and everything we know about the
		// certificate go to the store before the real signature exists, so
		// there is never a signed certificate the inventory does not know
		// of: a crash after this point leaves a "requested" row.
		rec = c.record(a, chk, req, pol, serial, tmpl)
		err = c.store.ReserveCertificate(ctx, rec)
		if err == nil {
			break
		}
		if !errors.Is(err, inventory.ErrDuplicate) || attempt >= maxSerialAttempts {
			return nil, c.fail(ctx, req, pol.Name, Wrap(storeErrKind(err), err, "recording the certificate request failed"))
		}
		c.log.Warn("serial collision, drawing another", "issuer", a.issuer.ID, "serial", inventory.FormatSerial(serial), "attempt", attempt)
	}
	if req.Reserved != nil {
		if err := req.Reserved(ctx, a.issuer.ID, serial); err != nil {
			return nil, c.abandon(ctx, req, rec, Wrap(storeErrKind(err), err, "recording the reservation on the request failed"))
		}
	}

	// Step 4: sign, once, with the HSM key. Then prove that what was signed
	// is what was linted (same tbsCertificate) and that the signature
	// verifies under the issuer's public key, so a misbehaving HSM or
	// signer cannot hand out a broken or different certificate.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.issuerCert, tmpl.PublicKey, a.signer)
	if err != nil {
		return nil, c.abandon(ctx, req, rec, Wrap(ErrUnavailable, err, fmt.Sprintf("issuing CA %s could not sign", a.issuer.ID)))
	}
	cert, err := x509.ParseCertificate(der)
	switch {
	case err != nil:
		return nil, c.abandon(ctx, req, rec, Wrap(ErrInternal, err, "the signed certificate does not parse"))
	case !bytes.Equal(cert.RawTBSCertificate, tbs):
		return nil, c.abandon(ctx, req, rec, Errorf(ErrInternal, "the signed certificate differs from the linted one"))
	}
	if err := cert.CheckSignatureFrom(a.issuerCert); err != nil {
		return nil, c.abandon(ctx, req, rec, Wrap(ErrInternal, err, "the HSM signature does not verify"))
	}
	c.crashPoint(crashAfterSign, req.Protocol)

	// Step 5: commit. The certificate becomes "issued" in the same
	// transaction as its audit event, and only after that commit does
	// anyone get to see it. If the commit fails the signature is thrown
	// away: a lost signature is harmless, a certificate in the wild that
	// the inventory does not know of is not.
	fp := sha256.Sum256(der)
	fingerprint := fmt.Sprintf("%x", fp[:])
	details, _ := json.Marshal(map[string]any{
		"profile":   pol.Name,
		"sans":      rec.SANs,
		"not_after": rec.NotAfter,
		"key_type":  rec.KeyType,
	})
	ev := c.event(req, "cert.issue", objectCert(a.issuer.ID, serial), "ok", details)
	if err := c.store.CompleteCertificate(ctx, a.issuer.ID, serial, der, fingerprint, ev); err != nil {
		return nil, c.abandon(ctx, req, rec, Wrap(storeErrKind(err), err, "committing the issued certificate failed; it was not issued"))
	}
	c.crashPoint(crashAfterCommit, req.Protocol)

	rec.State = inventory.StateIssued
	rec.DER = der
	rec.FingerprintSHA256 = fingerprint
	if c.rev != nil {
		c.rev.certIssued(ctx, rec)
	}
	c.log.Info("certificate issued", "issuer", a.issuer.ID, "serial", inventory.FormatSerial(serial), "profile", pol.Name,
		"requester", req.Requester, "protocol", req.Protocol, "not_after", rec.NotAfter)
	return &Issued{Certificate: cert, Chain: slices.Clone(a.chain), Record: rec}, nil
}

// record builds the inventory row for step 3.
func (c *CA) record(a *issuing, chk *checked, req Request, pol *policy, serial string, tmpl *x509.Certificate) *inventory.Certificate {
	predIssuer, pred := chk.predIssuer, chk.predecessor
	if predIssuer == a.issuer.ID {
		predIssuer = ""
	}
	return &inventory.Certificate{
		IssuerID:        a.issuer.ID,
		Serial:          serial,
		Subject:         tmpl.Subject.String(),
		CommonName:      chk.cn,
		SANs:            chk.sanStrings(),
		NotBefore:       chk.notBefore,
		NotAfter:        chk.notAfter,
		PublicKeySHA256: spkiSHA256(chk.csr.RawSubjectPublicKeyInfo),
		KeyType:         chk.keyType,
		Profile:         pol.Name,
		Requester:       req.Requester,
		Protocol:        req.Protocol,
		State:           inventory.StateRequested,
		Predecessor:     pred,

		PredecessorIssuerID: predIssuer,
	}
}

// abandon marks a reserved certificate failed and returns err. The store
// call runs detached from ctx: the request may be gone, the bookkeeping
// should still happen. If it fails too, the row stays "requested", which
// is what a crash would leave.
func (c *CA) abandon(ctx context.Context, req Request, rec *inventory.Certificate, err error) error {
	c.log.Error("issuance failed after reservation", "issuer", rec.IssuerID, "serial", inventory.FormatSerial(rec.Serial), "err", err)
	details, _ := json.Marshal(map[string]any{"profile": rec.Profile, "reason": UserMessage(err)})
	ev := c.event(req, "cert.issue", objectCert(rec.IssuerID, rec.Serial), "error", details)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := c.store.FailCertificate(dctx, rec.IssuerID, rec.Serial, ev); ferr != nil {
		c.log.Error("marking the reservation failed did not work either", "issuer", rec.IssuerID, "serial", inventory.FormatSerial(rec.Serial), "err", ferr)
	}
	return err
}

// fail audits an error before anything was reserved and returns it.
func (c *CA) fail(ctx context.Context, req Request, profile string, err error) error {
	c.log.Error("issuance failed", "profile", profile, "err", err)
	c.audit(ctx, req, profile, "", err)
	return err
}

// audit appends a "cert.issue" event for a request that was refused
// (outcome "denied": the requester's fault) or failed before reservation
// (outcome "error"). Failing to audit is logged, not returned: the caller
// is already returning the more useful error.
func (c *CA) audit(ctx context.Context, req Request, profile, object string, cause error) {
	outcome := "error"
	switch KindOf(cause) {
	case ErrBadCSR, ErrWeakKey, ErrPolicy, ErrLifetime, ErrUnknownProfile:
		outcome = "denied"
	}
	if object == "" {
		object = "profile:" + profile
	}
	var names []string
	if csr, err := parseCSR(req.CSR); err == nil {
		names = describeNames(csr)
	}
	details, _ := json.Marshal(map[string]any{
		"profile": profile,
		"kind":    KindOf(cause).Error(),
		"reason":  UserMessage(cause),
		"names":   names,
	})
	ev := c.event(req, "cert.issue", object, outcome, details)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := c.store.AppendEvent(dctx, ev); err != nil {
		c.log.Error("cannot write audit event", "action", ev.Action, "outcome", outcome, "err", err)
	}
	if outcome == "denied" {
		c.log.Info("certificate request refused", "profile", profile, "requester", req.Requester,
			"protocol", req.Protocol, "reason", UserMessage(cause))
	}
}

func (c *CA) event(req Request, action, object, outcome string, details json.RawMessage) inventory.Event {
	actor := req.Requester
	if actor == "" {
		actor = "unknown"
	}
	return inventory.Event{
		Time:     c.now().UTC(),
		Actor:    actor,
		Action:   action,
		Protocol: req.Protocol,
		Source:   req.Source,
		Object:   object,
		Outcome:  outcome,
		Details:  details,
	}
}

func objectCert(issuerID, serial string) string { return "cert:" + issuerID + "/" + serial }

// storeErrKind classifies a store failure: a refused argument or state is
// our bug (ErrInternal); anything else is the database being unreachable,
// busy or full (ErrUnavailable), which a retry may fix.
func storeErrKind(err error) error {
	if errors.Is(err, inventory.ErrInvalid) || errors.Is(err, inventory.ErrConflict) || errors.Is(err, inventory.ErrNotFound) {
		return ErrInternal
	}
	return ErrUnavailable
}
