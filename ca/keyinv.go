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

// The keys of the inventory that are not CA keys. Every one is listed
// with where it lives (a backend URI, or "db-sealed"/"config" for a
// secret — never the secret), its algorithm and size, and how its usage
// is counted (inventory.Key.Metering).
const (
	KeyClassWebhookHMAC = "webhook-hmac"

	// PoolSealKeyLabel is the backend label of the EST key-pool sealing
	// key (SealingKey creates it on first use under this label).
	PoolSealKeyLabel = "mica-est-pool-seal"

	// EABSealKeyLabel is the backend label of the key whose signature
	// derives the ACME EAB HMAC keys' wrapping key (SealingKey creates it
	// on first use under this label).
	EABSealKeyLabel = "mica-acme-eab-seal"
)

// sealKeyClasses maps the backend label of each sealing key the front
// ends create to its key class.
var sealKeyClasses = map[string]string{
	PoolSealKeyLabel: KeyClassPoolSeal,
	EABSealKeyLabel:  KeyClassEABSeal,
}

// eabKeyLister is the optional part of a KeyStore that lists ACME EAB
// keys and records their (one-time) use. *inventory.Store has it.
type eabKeyLister interface {
	EABKeyInfos(ctx context.Context) ([]inventory.EABKeyInfo, error)
	SetKeyUsage(ctx context.Context, id string, count int64, first, last *time.Time) error
}

// syncOtherKeys registers the sealing keys — the EST pool's and the
// ACME EAB keys' (found in the backend by their labels; their signatures
// go through the metered signer like a CA key's) — and every ACME EAB HMAC key (stored sealed in the database; its
// one use, binding an account, is read from the EAB row).
func syncOtherKeys(ctx context.Context, st KeyStore, b hsm.Backend, pol KeyPolicy, who Actor, known map[string]bool) (bool, error) {
	added := false
	// Listing a token's keys is costly (a PKCS#11 enumeration): only while
	// a seal key is not registered yet.
	missing := false
	for label := range sealKeyClasses {
		missing = missing || !known[label]
	}
	if b != nil && missing {
		infos, err := b.Keys(ctx)
		if err != nil {
			return false, Wrap(ErrUnavailable, err, "listing the backend's keys")
		}
		for _, ki := range infos {
			class, ok := sealKeyClasses[ki.Label]
			if !ok || known[ki.Label] {
				continue
			}
			k := inventory.Key{ID: ki.Label, Class: class, Backend: backendName(ki.URI), URI: ki.URI,
				Algorithm: string(hsm.RSA2048), Cryptoperiod: pol.Cryptoperiods[class], Metering: inventory.MeteringSigner}
			if kt := string(ki.Type); kt != "" {
				k.Algorithm = kt
			}
			if pub, err := b.PublicKey(ctx, ki.URI); err == nil {
				if spki, err := x509.MarshalPKIXPublicKey(pub); err == nil {
					k.PublicKey, k.SPKISHA256 = spki, spkiSHA256(spki)
				}
			}
			k.Protection, _ = json.Marshal(ki.Protection)
			if !ki.Created.IsZero() {
				k.Created = ki.Created
			}
			if err := putNew(ctx, st, &k, who); err != nil {
				return added, err
			}
			added = true
		}
	}
	el, ok := st.(eabKeyLister)
	if !ok {
		return added, nil
	}
	eabs, err := el.EABKeyInfos(ctx)
	if err != nil {
		return added, Wrap(ErrUnavailable, err, "listing the ACME EAB keys")
	}
	for _, e := range eabs {
		id := eabInventoryID(e.KeyID)
		if !known[id] {
			k := inventory.Key{ID: id, Class: KeyClassEABHMAC, Backend: "db-sealed", URI: "acme-eab:" + e.KeyID,
				Algorithm: "HMAC-SHA256-256", Created: e.CreatedAt, Cryptoperiod: pol.Cryptoperiods[KeyClassEABHMAC],
				Metering: inventory.MeteringSite}
			if err := putNew(ctx, st, &k, who); err != nil {
				return added, err
			}
			added = true
		}
		if e.UsedAt != nil {
			if err := el.SetKeyUsage(ctx, id, 1, e.UsedAt, e.UsedAt); err != nil {
				return added, Wrap(ErrUnavailable, err, "recording the use of EAB key "+e.KeyID)
			}
		}
	}
	return added, nil
}

// eabInventoryID is the key-inventory ID of an EAB key ID (which is
// URL-safe base64 and may hold characters the inventory IDs do not).
func eabInventoryID(kid string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '.'
	}, kid)
	if len(clean) > 56 {
		clean = clean[:56]
	}
	return "eab-" + clean
}

// SecretKey is a symmetric key MICA reads from its configuration (a
// webhook's HMAC secret): where it comes from, never its value.
type SecretKey struct {
	ID     string // inventory ID, e.g. webhook-1
	Class  string // KeyClassWebhookHMAC
	Source string // "file:/etc/mica/hook.key" or "env:NAME"
	Bits   int    // length of the secret in bits
	Note   string // for the audit event, e.g. the webhook URL's host
}

// RegisterSecrets adds the configured secrets the inventory does not list
// yet: backend "config", URI the secret's source, algorithm
// HMAC-SHA256-{bits}, usage not metered (they sign every alert; counting
// them would cost a database write per alert for no control it serves).
// A secret whose source changed since registration is a new key: the old
// row is retired.
func RegisterSecrets(ctx context.Context, st KeyStore, secrets []SecretKey, pol KeyPolicy, who Actor) error {
	have, err := st.Keys(ctx)
	if err != nil {
		return Wrap(ErrUnavailable, err, "cannot read the key inventory")
	}
	byID := map[string]inventory.Key{}
	for _, k := range have {
		byID[k.ID] = k
	}
	for _, s := range secrets {
		alg := fmt.Sprintf("HMAC-SHA256-%d", s.Bits)
		cur, ok := byID[s.ID]
		if ok && cur.URI == s.Source && cur.Algorithm == alg {
			continue
		}
		id := s.ID
		if ok {
			// Replaced in the configuration: the old row is kept, retired.
			if cur.Status == inventory.KeyActive {
				ev := who.event("key.retire", "key:"+cur.ID, map[string]any{"replaced_by_source": s.Source})
				if err := st.SetKeyStatus(ctx, cur.ID, inventory.KeyRetired, ev); err != nil {
					return Wrap(ErrUnavailable, err, "retiring the replaced secret "+cur.ID)
				}
			}
			id = fmt.Sprintf("%s-%d", s.ID, time.Now().Unix())
		}
		k := inventory.Key{ID: id, Class: s.Class, Backend: "config", URI: s.Source, Algorithm: alg,
			Cryptoperiod: pol.Cryptoperiods[s.Class], Metering: inventory.MeteringNone}
		if err := putNew(ctx, st, &k, who); err != nil {
			return err
		}
	}
	return nil
}

// putNew registers k with its audit event; an ID taken meanwhile (another
// replica registered it) is fine.
func putNew(ctx context.Context, st interface {
	PutKey(ctx context.Context, k *inventory.Key, ev inventory.Event) error
}, k *inventory.Key, who Actor) error {
	ev := who.event("key.register", "key:"+k.ID, map[string]any{"class": k.Class, "backend": k.Backend, "algorithm": k.Algorithm})
	if err := st.PutKey(ctx, k, ev); err != nil && !errors.Is(err, inventory.ErrDuplicate) {
		return Wrap(ErrUnavailable, err, "registering key "+k.ID)
	}
	return nil
}
