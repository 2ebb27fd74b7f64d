package ca

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// Key classes of the key inventory. Cryptoperiods are set per class.
const (
	KeyClassRoot          = "root"
	KeyClassIssuing       = "issuing"
	KeyClassOCSPResponder = "ocsp-responder"
	KeyClassPoolSeal      = "pool-seal"
	KeyClassEABHMAC       = "eab-hmac"
	KeyClassEABSeal       = "eab-seal"
)

// KeyStore is the part of the inventory the key lifecycle needs.
// *inventory.Store satisfies it; every method is safe for concurrent use.
type KeyStore interface {
	Issuers(ctx context.Context) ([]inventory.Issuer, error)
	PutIssuer(ctx context.Context, iss *inventory.Issuer, ev inventory.Event) error
	UpdateIssuerStatus(ctx context.Context, id, status string, ev inventory.Event) error
	Keys(ctx context.Context) ([]inventory.Key, error)
	Key(ctx context.Context, id string) (*inventory.Key, error)
	PutKey(ctx context.Context, k *inventory.Key, ev inventory.Event) error
	SetKeyStatus(ctx context.Context, id, status string, ev inventory.Event) error
	IssuerDuty(ctx context.Context, issuerID string) (time.Time, error)
	// SetKeyCryptoperiod sets a key's cryptoperiod and rotation due date
	// (activation + period) with ev, atomically. Errors: not found.
	SetKeyCryptoperiod(ctx context.Context, id string, period time.Duration, ev inventory.Event) error
}

// KeyPolicy is the cryptoperiod policy (NIST SP 800-57 Part 1 §5.3): how
// long a key of each class may be used to sign before it must be replaced.
type KeyPolicy struct {
	Cryptoperiods map[string]time.Duration // by class; 0 or missing: no policy
	// Retention by class: how long a retired key is kept before it may be
	// destroyed (time to notice a mistake, re-sign in an incident, or
	// finish an audit). 0 or missing: destroyable once retired.
	Retention map[string]time.Duration
}

// RetentionError says a retired key is still inside its retention period.
// DestroyKeyRetained returns it wrapped in an *Error of kind ErrPolicy.
type RetentionError struct {
	KeyID, Class string
	RetiredAt    time.Time
	Retention    time.Duration
	Destroyable  time.Time // RetiredAt + Retention: the first moment destroy is allowed
}

func (e *RetentionError) Error() string {
	return fmt.Sprintf("key %s (%s) retired %s is kept for %s: it can be destroyed from %s", e.KeyID, e.Class,
		e.RetiredAt.UTC().Format(time.RFC3339), days(e.Retention), e.Destroyable.UTC().Format(time.RFC3339))
}

// days writes whole days as "90d", anything else as a Go duration.
func days(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// Actor says who does a key operation, for the audit events.
type Actor struct {
	Name, Protocol, Source string
}

func (a Actor) event(action, object string, details any) inventory.Event {
	ev := inventory.Event{Actor: a.Name, Action: action, Protocol: a.Protocol, Source: a.Source, Object: object, Outcome: "ok"}
	if ev.Protocol == "" {
		ev.Protocol = "cli"
	}
	if details != nil {
		ev.Details, _ = json.Marshal(details)
	}
	return ev
}

// backendName is the scheme of a key URI, "offline" for a key MICA does
// not hold.
func backendName(uri string) string {
	if uri == "" {
		return "offline"
	}
	s, _, _ := strings.Cut(uri, ":")
	return s
}

// issuerKey builds the inventory row for an issuer's key.
func issuerKeyRow(ctx context.Context, is inventory.Issuer, b hsm.Backend, pol KeyPolicy) (inventory.Key, error) {
	cert, err := x509.ParseCertificate(is.DER)
	if err != nil {
		return inventory.Key{}, Wrap(ErrConfig, err, fmt.Sprintf("issuer %s: its certificate does not parse", is.ID))
	}
	class := KeyClassIssuing
	if is.IsRoot {
		class = KeyClassRoot
	}
	k := inventory.Key{
		ID: is.ID, Class: class, Backend: backendName(is.KeyURI), URI: is.KeyURI, Algorithm: is.KeyType,
		IssuerID: is.ID, PublicKey: cert.RawSubjectPublicKeyInfo, SPKISHA256: spkiSHA256(cert.RawSubjectPublicKeyInfo),
		Status: inventory.KeyActive, Cryptoperiod: pol.Cryptoperiods[class],
		Created: is.CreatedAt, ActivateAt: cert.NotBefore,
	}
	if is.Status == StatusRetired {
		k.Status = inventory.KeyRetired
	}
	if is.KeyURI != "" && b != nil {
		// Read, never assumed: the protection the token reports is the
		// evidence the compliance report rests on.
		if p, err := b.Protection(ctx, is.KeyURI); err == nil {
			k.Protection, _ = json.Marshal(p)
		}
	}
	return k, nil
}

// SyncKeys registers in the key inventory every issuer key it does not
// list yet (keys made by `mica init` or by an older version), the EST
// pool-sealing key and the ACME EAB keys (keyinv.go), and returns the
// whole inventory. Registering is idempotent, so every process that
// opens the CA may run it.
func SyncKeys(ctx context.Context, st KeyStore, b hsm.Backend, pol KeyPolicy, who Actor) ([]inventory.Key, error) {
	issuers, err := st.Issuers(ctx)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "cannot read the issuers from the store")
	}
	have, err := st.Keys(ctx)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "cannot read the key inventory")
	}
	known := map[string]bool{}
	for _, k := range have {
		known[k.ID] = true
	}
	added := false
	for _, is := range issuers {
		if known[is.ID] {
			continue
		}
		k, err := issuerKeyRow(ctx, is, b, pol)
		if err != nil {
			return nil, err
		}
		if err := putNew(ctx, st, &k, who); err != nil {
			return nil, err
		}
		added = true
	}
	more, err := syncOtherKeys(ctx, st, b, pol, who, known)
	if err != nil {
		return nil, err
	}
	changed, err := applyCryptoperiods(ctx, st, have, pol, who)
	if err != nil {
		return nil, err
	}
	if !added && !more && !changed {
		return have, nil
	}
	return st.Keys(ctx)
}

// applyCryptoperiods brings the keys registered under an older policy to
// the current one: a shortened cryptoperiod in mica.yaml must move the
// rotation due date of keys that already exist, not only of new ones.
// Delegated OCSP responder keys keep theirs (half their certificate's
// life, set when they are made); retired and destroyed keys keep the
// period they were used under.
func applyCryptoperiods(ctx context.Context, st KeyStore, have []inventory.Key, pol KeyPolicy, who Actor) (bool, error) {
	changed := false
	for _, k := range have {
		period, ok := pol.Cryptoperiods[k.Class]
		if !ok || k.Class == KeyClassOCSPResponder || period == k.Cryptoperiod ||
			(k.Status != inventory.KeyActive && k.Status != inventory.KeyPreActivation) {
			continue
		}
		ev := who.event("key.policy", "key:"+k.ID, map[string]any{"cryptoperiod_old": HumanDuration(k.Cryptoperiod), "cryptoperiod": HumanDuration(period)})
		if err := st.SetKeyCryptoperiod(ctx, k.ID, period, ev); err != nil {
			return changed, Wrap(ErrUnavailable, err, "updating the cryptoperiod of key "+k.ID)
		}
		changed = true
	}
	return changed, nil
}

// RetireIssuers retires every issuing CA that has been superseded (a newer
// active issuer under any root has started) and whose last certificate
// has expired: from then on nobody needs its CRL or OCSP, so its key is
// retired too and the signing path refuses it. It returns the retired IDs.
func RetireIssuers(ctx context.Context, st KeyStore, now time.Time, who Actor) ([]string, error) {
	issuers, err := st.Issuers(ctx)
	if err != nil {
		return nil, Wrap(ErrUnavailable, err, "cannot read the issuers from the store")
	}
	var newest time.Time
	for _, is := range issuers {
		if !is.IsRoot && is.Status == StatusActive && is.KeyURI != "" && !is.NotBefore.After(now) && is.NotBefore.After(newest) {
			newest = is.NotBefore
		}
	}
	var retired []string
	for _, is := range issuers {
		if is.IsRoot || is.Status != StatusActive || !is.NotBefore.Before(newest) {
			continue
		}
		duty, err := st.IssuerDuty(ctx, is.ID)
		if err != nil {
			return retired, Wrap(ErrUnavailable, err, "reading the certificates of issuer "+is.ID)
		}
		if duty.After(now) {
			continue
		}
		ev := who.event("issuer.retire", "issuer:"+is.ID, map[string]any{"status": StatusRetired, "last_cert_expired": duty})
		if err := st.UpdateIssuerStatus(ctx, is.ID, StatusRetired, ev); err != nil {
			return retired, Wrap(ErrUnavailable, err, "retiring issuer "+is.ID)
		}
		if err := st.SetKeyStatus(ctx, is.ID, inventory.KeyRetired, who.event("key.retire", "key:"+is.ID, nil)); err != nil && !errors.Is(err, inventory.ErrNotFound) {
			return retired, Wrap(ErrUnavailable, err, "retiring key "+is.ID)
		}
		retired = append(retired, is.ID)
	}
	return retired, nil
}

// RetireKey retires one key by hand (an operator taking a key out of
// service early). The issuer it belongs to is retired with it, which
// stops its CRLs and OCSP: refused while it still has unexpired
// certificates, unless force is set (key compromise, where the operator
// revokes and re-issues instead).
func RetireKey(ctx context.Context, st KeyStore, id string, now time.Time, force bool, who Actor) error {
	k, err := st.Key(ctx, id)
	if err != nil {
		return keyErr(err, id)
	}
	if k.Status == inventory.KeyDestroyed || k.Status == inventory.KeyRetired {
		return nil
	}
	if k.IssuerID != "" && !force {
		if err := checkNoDuty(ctx, st, k, now); err != nil {
			return err
		}
	}
	if err := st.SetKeyStatus(ctx, id, inventory.KeyRetired, who.event("key.retire", "key:"+id, map[string]any{"forced": force})); err != nil {
		return keyErr(err, id)
	}
	if k.IssuerID != "" {
		ev := who.event("issuer.retire", "issuer:"+k.IssuerID, map[string]any{"status": StatusRetired, "key": id})
		if err := st.UpdateIssuerStatus(ctx, k.IssuerID, StatusRetired, ev); err != nil && !errors.Is(err, inventory.ErrNotFound) {
			return Wrap(ErrUnavailable, err, "retiring issuer "+k.IssuerID)
		}
	}
	return nil
}

// checkNoDuty refuses when the key's issuer still has unexpired
// certificates (relying parties need its CRL and OCSP) or, for a root,
// unexpired subordinate CAs whose revocation it would have to publish.
func checkNoDuty(ctx context.Context, st KeyStore, k *inventory.Key, now time.Time) error {
	duty, err := st.IssuerDuty(ctx, k.IssuerID)
	if err != nil {
		return Wrap(ErrUnavailable, err, "reading the certificates of issuer "+k.IssuerID)
	}
	if duty.After(now) {
		return Errorf(ErrPolicy, "key %s still has unexpired certificates (the last expires %s) and must keep publishing CRL and OCSP for them",
			k.ID, duty.UTC().Format(time.RFC3339))
	}
	issuers, err := st.Issuers(ctx)
	if err != nil {
		return Wrap(ErrUnavailable, err, "cannot read the issuers from the store")
	}
	for _, is := range issuers {
		if is.ParentID == k.IssuerID && is.NotAfter.After(now) {
			return Errorf(ErrPolicy, "key %s signed issuing CA %s, which is valid until %s: its CRL duty is live",
				k.ID, is.ID, is.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// DestroyKeyRetained removes the private key object of a retired key
// from its backend and marks it destroyed; the public key and every
// certificate stay in the store for verification. It is refused (kind
// ErrPolicy) for a key that is not retired; whose issuer has unexpired
// certificates or a live CRL duty (destroying it would leave relying
// parties without revocation status); or that is still inside its
// class's retention period (pol.Retention; the error wraps a
// *RetentionError naming the date it becomes destroyable). A key already
// gone from the backend is recorded as destroyed.
func DestroyKeyRetained(ctx context.Context, st KeyStore, b hsm.Backend, id string, pol KeyPolicy, now time.Time, who Actor) error {
	k, err := st.Key(ctx, id)
	if err != nil {
		return keyErr(err, id)
	}
	switch k.Status {
	case inventory.KeyDestroyed:
		return Errorf(ErrPolicy, "key %s is already destroyed", id)
	case inventory.KeyRetired:
	default:
		return Errorf(ErrPolicy, "key %s is %s: retire it (and let its duties end) before destroying it", id, k.Status)
	}
	// Duties first: they are the reason that matters to relying parties,
	// and a key with duties is not destroyable whatever its retention.
	if k.IssuerID != "" {
		if err := checkNoDuty(ctx, st, k, now); err != nil {
			return err
		}
	}
	if err := checkRetention(k, pol, now); err != nil {
		return err
	}
	gone := false
	if k.URI != "" {
		if b == nil {
			return Errorf(ErrConfig, "key %s is in backend %s, which is not open", id, k.Backend)
		}
		switch err := b.DeleteKey(ctx, k.URI); {
		case errors.Is(err, hsm.ErrNotFound):
			gone = true
		case err != nil:
			return Wrap(ErrUnavailable, err, "deleting key "+id+" from its backend")
		}
	}
	ev := who.event("key.destroy", "key:"+id, map[string]any{"uri": redactURI(k.URI), "already_absent": gone, "spki_sha256": k.SPKISHA256})
	if err := st.SetKeyStatus(ctx, id, inventory.KeyDestroyed, ev); err != nil {
		return keyErr(err, id)
	}
	return nil
}

// checkRetention refuses a key retired less than its class's retention
// period ago. A negative period is a configuration error; a retired key
// without a retirement date (never written by this version) under a
// non-zero period is refused rather than guessed.
func checkRetention(k *inventory.Key, pol KeyPolicy, now time.Time) error {
	ret := pol.Retention[k.Class]
	switch {
	case ret < 0:
		return Errorf(ErrConfig, "key_policy.retention.%s is negative", k.Class)
	case ret == 0:
		return nil
	case k.RetiredAt == nil:
		return Errorf(ErrPolicy, "key %s has no retirement date: its %s retention period cannot be checked", k.ID, ret)
	}
	re := &RetentionError{KeyID: k.ID, Class: k.Class, RetiredAt: *k.RetiredAt, Retention: ret, Destroyable: k.RetiredAt.Add(ret)}
	if now.Before(re.Destroyable) {
		return Wrap(ErrPolicy, re, fmt.Sprintf("key %s is in its retention period until %s", k.ID, re.Destroyable.UTC().Format(time.RFC3339)))
	}
	return nil
}

func keyErr(err error, id string) error {
	if errors.Is(err, inventory.ErrNotFound) {
		return Wrap(ErrNotFound, err, "no key "+id+" in the inventory")
	}
	return Wrap(ErrUnavailable, err, "key "+id)
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
