package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/mica-pki/mica/ca/revocation"
	"github.com/mica-pki/mica/inventory"
)

// OCSPAnswer is what the responder says to one request. DER is always set
// (unsuccessful statuses are the constant responses of ca/revocation).
type OCSPAnswer struct {
	DER []byte
	// Status is good, revoked, unknown, malformedRequest, unauthorized or
	// internalError: the metric label and log field.
	Status string
	// Cacheable is true for answers that are the same for every client
	// (pre-signed, no nonce): HTTP may send Cache-Control and an ETag.
	// Nonce answers are bound to one request and must not be cached.
	Cacheable              bool
	ThisUpdate, NextUpdate time.Time
}

// responder is a delegated OCSP responder of the active issuing CA.
type responder struct {
	issuerID string // the issuing CA that certified it
	cert     *x509.Certificate
	key      crypto.Signer
}

// signerFor returns the certificate (nil: the issuer itself) and key that
// sign OCSP for ik, issuing or rotating the delegated responder when one
// is configured. Only the active issuing CA gets a delegate: issuing one
// needs the CA's issuance path, and retired issuers answer rarely.
func (r *revoker) signerFor(ctx context.Context, ik *issuerKey) (*x509.Certificate, crypto.Signer, error) {
	a := r.ca.cur()
	if !r.cfg.DelegatedResponder || ik.id != a.issuer.ID {
		return nil, ik.signer, nil
	}
	now := r.ca.now()
	r.mu.Lock()
	cur := r.resp
	r.mu.Unlock()
	if cur != nil && cur.issuerID != a.issuer.ID {
		// The active issuer changed (rotation): the old delegate can
		// only speak for the old issuer, which now signs for itself.
		cur = nil
	}
	if cur != nil && now.Before(cur.cert.NotBefore.Add(cur.cert.NotAfter.Sub(cur.cert.NotBefore)/2)) {
		return cur.cert, cur.key, nil
	}
	next, err := r.ca.issueResponder(ctx, a, now, r.cfg.ResponderValidity)
	if err != nil {
		if cur != nil && now.Before(cur.cert.NotAfter) {
			r.log.Error("rotating the OCSP responder certificate failed; keeping the current one", "err", err)
			return cur.cert, cur.key, nil
		}
		return nil, nil, err
	}
	r.rotated.Add(1)
	r.mu.Lock()
	prev := r.resp
	r.resp = next
	r.mu.Unlock()
	r.registerResponder(ctx, prev, next)
	return next.cert, next.key, nil
}

// issueResponder makes a delegated responder: a fresh P-256 key in memory
// (RFC 6960 ocsp-nocheck makes the certificate unrevocable, so it is kept
// short-lived instead) and a certificate from the active issuing CA,
// recorded in the inventory like every certificate MICA signs.
func (c *CA) issueResponder(ctx context.Context, a *issuing, now time.Time, validity time.Duration) (*responder, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, Wrap(ErrInternal, err, "generating the OCSP responder key failed")
	}
	nb := now.UTC().Truncate(time.Second).Add(-time.Minute)
	na := nb.Add(validity)
	if na.After(a.issuerCert.NotAfter) {
		na = a.issuerCert.NotAfter
	}
	tmpl, err := revocation.DelegatedResponderTemplate(pkix.Name{CommonName: "MICA OCSP Responder " + a.issuer.ID}, nb, na)
	if err != nil {
		return nil, Wrap(ErrInternal, err, "building the OCSP responder template failed")
	}
	sn, err := newSerial()
	if err != nil {
		return nil, Wrap(ErrInternal, err, "drawing a serial number failed")
	}
	tmpl.SerialNumber = sn
	tmpl.AuthorityKeyId = a.issuerCert.SubjectKeyId
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, Wrap(ErrInternal, err, "encoding the OCSP responder key failed")
	}
	serial := serialHex(sn)
	rec := &inventory.Certificate{
		IssuerID: a.issuer.ID, Serial: serial, Subject: tmpl.Subject.String(), CommonName: tmpl.Subject.CommonName,
		NotBefore: nb, NotAfter: na, PublicKeySHA256: spkiSHA256(spki), KeyType: "EC-P256",
		Profile: "ocsp-responder", Requester: "mica", Protocol: "server", State: inventory.StateRequested,
	}
	req := Request{Requester: "mica", Protocol: "server", Source: "localhost"}
	// Recorded before it is signed, committed before it is used: the same
	// rule as every other certificate (see issue.go).
	if err := c.store.ReserveCertificate(ctx, rec); err != nil {
		return nil, Wrap(storeErrKind(err), err, "recording the OCSP responder certificate failed")
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.issuerCert, key.Public(), a.signer)
	if err != nil {
		return nil, c.abandon(ctx, req, rec, Wrap(ErrUnavailable, err, "signing the OCSP responder certificate failed"))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, c.abandon(ctx, req, rec, Wrap(ErrInternal, err, "the OCSP responder certificate does not parse"))
	}
	fp := sha256.Sum256(der)
	details, _ := json.Marshal(map[string]any{"profile": rec.Profile, "not_after": na})
	ev := c.event(req, "cert.issue", objectCert(a.issuer.ID, serial), "ok", details)
	if err := c.store.CompleteCertificate(ctx, a.issuer.ID, serial, der, fmt.Sprintf("%x", fp[:]), ev); err != nil {
		return nil, c.abandon(ctx, req, rec, Wrap(storeErrKind(err), err, "committing the OCSP responder certificate failed"))
	}
	c.log.Info("OCSP responder certificate issued", "issuer", a.issuer.ID, "serial", inventory.FormatSerial(serial), "not_after", na)
	return &responder{issuerID: a.issuer.ID, cert: cert, key: &countingSigner{Signer: key, now: c.now}}, nil
}

// signResponse signs the answer about rec for id. Serials we never issued
// get no signed answer at all (see respond).
func (r *revoker) signResponse(ctx context.Context, ik *issuerKey, id revocation.CertID, rec *inventory.Certificate, nonce []byte) ([]byte, revocation.Response, error) {
	now := r.ca.now().UTC().Truncate(time.Second)
	resp := revocation.Response{CertID: id, Status: revocation.Unknown, ThisUpdate: now, NextUpdate: now.Add(r.cfg.OCSPValidity), Nonce: nonce}
	if rec != nil {
		switch rec.State {
		case inventory.StateIssued, inventory.StateSuperseded:
			resp.Status = revocation.Good
		case inventory.StateRevoked:
			resp.Status = revocation.Revoked
			resp.Reason = RevocationReasons[rec.RevocationReason]
			if rec.RevokedAt != nil {
				resp.RevokedAt = *rec.RevokedAt
			}
		}
	}
	cert, signer, err := r.signerFor(ctx, ik)
	if err != nil {
		return nil, resp, err
	}
	der, err := revocation.CreateResponse(ik.cert, cert, signer, resp)
	if err != nil {
		return nil, resp, Wrap(ErrUnavailable, err, fmt.Sprintf("signing an OCSP response for %s failed", ik.id))
	}
	return der, resp, nil
}

// presign signs and stores the no-nonce response for rec (SHA-1 CertID,
// what RFC 5019 clients send).
func (r *revoker) presign(ctx context.Context, rec *inventory.Certificate) (*inventory.OCSPResponse, error) {
	ik, err := r.issuerKey(ctx, rec.IssuerID, false)
	if err != nil {
		return nil, err
	}
	serial, ok := new(big.Int).SetString(rec.Serial, 16)
	if !ok {
		return nil, Errorf(ErrInternal, "stored serial %q is not hex", rec.Serial)
	}
	id, err := revocation.NewCertID(ik.cert, crypto.SHA1, serial)
	if err != nil {
		return nil, Wrap(ErrInternal, err, "building the OCSP CertID failed")
	}
	der, resp, err := r.signResponse(ctx, ik, id, rec, nil)
	if err != nil {
		return nil, err
	}
	r.pre.Add(1)
	status := "good"
	if resp.Status == revocation.Revoked {
		status = "revoked"
	}
	out := &inventory.OCSPResponse{IssuerID: rec.IssuerID, Serial: rec.Serial, Status: status,
		ThisUpdate: resp.ThisUpdate, NextUpdate: resp.NextUpdate, DER: der}
	if err := r.store.PutOCSPResponse(ctx, out); err != nil {
		return nil, Wrap(ErrUnavailable, err, "storing the OCSP response failed")
	}
	return out, nil
}

// refreshOCSP re-signs, under the issuer's OCSP lock, every response of ik
// that is missing, past half its validity, or out of date with a
// revocation, in pages so a large backlog never sits in memory.
func (r *revoker) refreshOCSP(ctx context.Context, ik *issuerKey) error {
	return r.withLock(ctx, "ocsp:"+ik.id, func() error {
		now := r.ca.now()
		horizon := now.Add(r.cfg.OCSPValidity / 2)
		for {
			due, err := r.store.OCSPDue(ctx, ik.id, horizon, now, 500)
			if err != nil {
				return Wrap(ErrUnavailable, err, "listing stale OCSP responses failed")
			}
			for i := range due {
				if _, err := r.presign(ctx, &due[i]); err != nil {
					return err
				}
			}
			if len(due) < 500 {
				return nil
			}
		}
	})
}

// RespondOCSP answers one DER OCSP request. A request without a nonce is
// answered from the pre-signed response when it is fresh (no signature);
// a nonce, a non-SHA-1 CertID, or a missing response costs one signature.
// A serial we never issued, or an issuer we do not hold, gets the constant
// unsigned unauthorized response and costs nothing.
// It never fails: problems become the unsuccessful OCSP statuses.
func (c *CA) RespondOCSP(ctx context.Context, der []byte) OCSPAnswer {
	if c.rev == nil {
		return OCSPAnswer{DER: []byte(revocation.InternalErrorResponse), Status: "internalError"}
	}
	req, err := revocation.ParseRequest(der)
	if err != nil {
		return OCSPAnswer{DER: []byte(revocation.MalformedRequestResponse), Status: "malformedRequest"}
	}
	return c.rev.respond(ctx, req)
}

func (r *revoker) respond(ctx context.Context, req *revocation.Request) OCSPAnswer {
	internal := OCSPAnswer{DER: []byte(revocation.InternalErrorResponse), Status: "internalError"}
	unauthorized := OCSPAnswer{DER: []byte(revocation.UnauthorizedResponse), Status: "unauthorized"}
	// A database outage is tryLater (RFC 6960 section 2.3), which tells
	// the relying party to retry, rather than internalError.
	tryLater := OCSPAnswer{DER: []byte(revocation.TryLaterResponse), Status: "tryLater"}
	failed := func(err error) OCSPAnswer {
		if inventory.IsUnavailable(err) {
			return tryLater
		}
		return internal
	}
	var ik *issuerKey
	for _, refresh := range []bool{false, true} {
		iks, err := r.issuerKeys(ctx, refresh)
		if err != nil {
			return failed(err)
		}
		for _, k := range iks {
			if req.MatchesIssuer(k.cert) {
				ik = k
			}
		}
		if ik != nil {
			break
		}
	}
	if ik == nil {
		return unauthorized
	}
	serial := ""
	if req.Serial != nil && req.Serial.Sign() > 0 {
		serial = req.Serial.Text(16)
	}
	now := r.ca.now()
	if req.Nonce == nil && req.HashAlgorithm == crypto.SHA1 && serial != "" {
		pre, err := r.store.GetOCSPResponse(ctx, ik.id, serial)
		switch {
		case err == nil && now.Before(pre.NextUpdate):
			return OCSPAnswer{DER: pre.DER, Status: pre.Status, Cacheable: true, ThisUpdate: pre.ThisUpdate, NextUpdate: pre.NextUpdate}
		case err != nil && !errors.Is(err, inventory.ErrNotFound):
			r.log.Error("OCSP: reading the pre-signed response failed", "issuer", ik.id, "serial", inventory.FormatSerial(serial), "err", err)
			return failed(err)
		}
	}
	var rec *inventory.Certificate
	if serial != "" {
		got, err := r.ca.store.Certificate(ctx, ik.id, serial)
		switch {
		case err == nil && got.State != inventory.StateRequested && got.State != inventory.StateFailed:
			rec = got
		case err != nil && !errors.Is(err, inventory.ErrNotFound):
			r.log.Error("OCSP: looking up the certificate failed", "issuer", ik.id, "serial", inventory.FormatSerial(serial), "err", err)
			return failed(err)
		}
	}
	if rec == nil {
		// A serial this issuer never signed (never reserved, only
		// reserved, or failed): there is nothing to vouch for, so the
		// answer is the constant unsigned unauthorized (RFC 5019 section
		// 2.2.3, RFC 6960 section 2.3), which costs no signature and
		// stores nothing. Signing "unknown" here would let anyone make
		// the HSM sign once per request by inventing serials.
		return unauthorized
	}
	if req.Nonce == nil && req.HashAlgorithm == crypto.SHA1 {
		// Missing or stale pre-signed response: sign it now, for everyone.
		pre, err := r.presign(ctx, rec)
		if err != nil {
			r.log.Error("OCSP: signing a response failed", "issuer", ik.id, "serial", inventory.FormatSerial(serial), "err", err)
			return internal
		}
		return OCSPAnswer{DER: pre.DER, Status: pre.Status, Cacheable: true, ThisUpdate: pre.ThisUpdate, NextUpdate: pre.NextUpdate}
	}
	der, resp, err := r.signResponse(ctx, ik, req.CertID, rec, req.Nonce)
	if err != nil {
		r.log.Error("OCSP: signing a response failed", "issuer", ik.id, "serial", inventory.FormatSerial(serial), "err", err)
		return internal
	}
	r.live.Add(1)
	status := [...]string{"good", "revoked", "unknown"}[resp.Status]
	return OCSPAnswer{DER: der, Status: status, ThisUpdate: resp.ThisUpdate, NextUpdate: resp.NextUpdate}
}
