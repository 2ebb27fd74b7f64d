package acme

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/mica-pki/mica/inventory"
)

// EABAdminStore is what EABAdmin needs; *inventory.Store satisfies it.
// Methods are called concurrently, honour ctx and return errors of the
// inventory vocabulary.
type EABAdminStore interface {
	EABStore
	ACMEEABKeys(ctx context.Context) ([]inventory.ACMEEABKey, error)
	RevokeACMEEABKey(ctx context.Context, kid string, ev inventory.Event) error
}

// EABAdmin creates, lists and revokes external account binding keys for
// the ACME directories in Profiles (empty: DefaultProfiles). `mica acme
// eab create` and the admin API both go through it.
type EABAdmin struct {
	Store    EABAdminStore
	Sealer   *EABSealer // seals the HMAC keys (eab_seal.go)
	Profiles map[string]Profile
}

// CheckEABProfile reports whether profile is an ACME directory of
// profiles (empty: DefaultProfiles). Errors wrap inventory.ErrInvalid.
func CheckEABProfile(profiles map[string]Profile, profile string) error {
	if len(profiles) == 0 {
		profiles = DefaultProfiles()
	}
	if _, ok := profiles[profile]; !ok {
		if len(profile) > 64 {
			profile = profile[:64] + "…"
		}
		return fmt.Errorf("%w: no ACME profile %q in the configuration", inventory.ErrInvalid, profile)
	}
	return nil
}

// CreateEABKey checks profile and creates a key through CreateEABKey,
// audited with ev's actor, protocol and source. It returns the key ID and
// the base64url HMAC key, which the caller shows once and never logs.
func (a *EABAdmin) CreateEABKey(ctx context.Context, profile string, ev inventory.Event) (kid, hmacKey string, err error) {
	if err := CheckEABProfile(a.Profiles, profile); err != nil {
		return "", "", err
	}
	return CreateEABKey(ctx, a.Store, a.Sealer, profile, ev)
}

// EABKeys lists the keys, newest first, without their sealed HMAC keys.
func (a *EABAdmin) EABKeys(ctx context.Context) ([]inventory.ACMEEABKey, error) {
	return a.Store.ACMEEABKeys(ctx)
}

// RevokeEABKey deletes an unbound key, audited with ev. Errors:
// inventory.ErrNotFound, inventory.ErrConflict for a bound key.
func (a *EABAdmin) RevokeEABKey(ctx context.Context, kid string, ev inventory.Event) error {
	return a.Store.RevokeACMEEABKey(ctx, kid, ev)
}

// OpenEABKey returns the HMAC key sealed in k: the step newAccount's
// binding check performs before verifying the JWS.
func OpenEABKey(sealer *EABSealer, k *inventory.ACMEEABKey) ([]byte, error) {
	key, _, err := sealer.open(k.KeyID, k.Sealed)
	return key, err
}

// EABProfiles lists the ACME directories keys can be made for, sorted.
func (a *EABAdmin) EABProfiles() []string {
	profiles := a.Profiles
	if len(profiles) == 0 {
		profiles = DefaultProfiles()
	}
	return slices.Sorted(maps.Keys(profiles))
}
