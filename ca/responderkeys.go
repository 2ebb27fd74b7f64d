package ca

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// Delegated OCSP responder keys in the key inventory.
//
// A responder key lives in one process's memory for half its certificate's
// lifetime and is then replaced (ocsp.go, signerFor): it rotates by itself,
// and its cryptoperiod is that half-life. Each one is still a key MICA
// holds, so it is registered like the others — backend "memory", the
// certificate's issuer and serial in its URI — and retired when replaced.
// Its signatures are counted here, where it signs (metering "site"), and
// written as an absolute count: the key belongs to exactly one process.

// responderKeyStore is the optional part of the revocation store that
// records responder keys. *inventory.Store has it.
type responderKeyStore interface {
	PutKey(ctx context.Context, k *inventory.Key, ev inventory.Event) error
	SetKeyStatus(ctx context.Context, id, status string, ev inventory.Event) error
	SetKeyUsage(ctx context.Context, id string, count int64, first, last *time.Time) error
}

// countingSigner counts a responder key's signatures.
type countingSigner struct {
	crypto.Signer
	now func() time.Time

	mu          sync.Mutex
	n           int64
	first, last time.Time
}

func (s *countingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := s.Signer.Sign(r, digest, opts)
	if err != nil {
		return nil, err
	}
	t := s.now()
	s.mu.Lock()
	s.n++
	if s.first.IsZero() {
		s.first = t
	}
	s.last = t
	s.mu.Unlock()
	return sig, nil
}

func (s *countingSigner) usage() (int64, *time.Time, *time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return 0, nil, nil
	}
	f, l := s.first, s.last
	return s.n, &f, &l
}

// responderKeyID is the inventory ID of the responder certified by serial.
func responderKeyID(serial string) string { return "ocsp-" + serial }

// registerResponder records next's key, and retires prev's (with its
// final count). Failures are logged: the inventory row is evidence, not a
// precondition for answering OCSP.
func (r *revoker) registerResponder(ctx context.Context, prev, next *responder) {
	ks, ok := r.store.(responderKeyStore)
	if !ok {
		return
	}
	who := Actor{Name: "mica", Protocol: "system"}
	if next != nil {
		cert := next.cert
		life := cert.NotAfter.Sub(cert.NotBefore)
		due := cert.NotBefore.Add(life / 2)
		serial := serialHex(cert.SerialNumber)
		k := &inventory.Key{
			ID: responderKeyID(serial), Class: KeyClassOCSPResponder, Backend: "memory",
			URI:       fmt.Sprintf("memory:ocsp-responder;issuer=%s;serial=%s", next.issuerID, serial),
			Algorithm: "EC-P256", IssuerID: "", PublicKey: cert.RawSubjectPublicKeyInfo, SPKISHA256: spkiSHA256(cert.RawSubjectPublicKeyInfo),
			Protection: []byte(`{"backend":"memory","extractable":false}`), Status: inventory.KeyActive,
			Cryptoperiod: life / 2, Created: cert.NotBefore, ActivateAt: cert.NotBefore, RotationDue: &due, Metering: inventory.MeteringSite,
		}
		if err := putNew(ctx, ks, k, who); err != nil {
			r.log.Warn("registering the OCSP responder key failed", "key", k.ID, "err", err)
		}
	}
	if prev != nil {
		r.flushResponder(ctx, prev)
		id := responderKeyID(serialHex(prev.cert.SerialNumber))
		if err := ks.SetKeyStatus(ctx, id, inventory.KeyRetired, who.event("key.retire", "key:"+id, map[string]any{"reason": "responder rotated"})); err != nil {
			r.log.Warn("retiring the previous OCSP responder key failed", "key", id, "err", err)
		}
	}
}

// flushResponder writes the responder's use count.
func (r *revoker) flushResponder(ctx context.Context, resp *responder) {
	ks, ok := r.store.(responderKeyStore)
	if !ok || resp == nil {
		return
	}
	cs, ok := resp.key.(*countingSigner)
	if !ok {
		return
	}
	n, first, last := cs.usage()
	if n == 0 {
		return
	}
	id := responderKeyID(serialHex(resp.cert.SerialNumber))
	if err := ks.SetKeyUsage(ctx, id, n, first, last); err != nil {
		r.log.Warn("recording the OCSP responder key's usage failed", "key", id, "err", err)
	}
}

// currentResponder returns the delegated responder in use, if any.
func (r *revoker) currentResponder() *responder {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resp
}
