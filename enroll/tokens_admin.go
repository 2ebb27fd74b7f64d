package enroll

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// Limits on a one-time token request, the same from the CLI and the
// admin API. A token is a bearer credential for a certificate: a long
// lifetime is a long window for a leaked one.
const (
	MaxTokenTTL   = 90 * 24 * time.Hour
	MaxTokenNames = 100
	maxNameLen    = 512
)

// TokenStore is what TokenAdmin needs; *inventory.Store satisfies it.
// Methods are called concurrently, honour ctx and return errors of the
// inventory vocabulary.
type TokenStore interface {
	CreateESTToken(ctx context.Context, t *inventory.ESTToken, ev inventory.Event) error
	ESTTokens(ctx context.Context) ([]inventory.ESTToken, error)
	RevokeESTToken(ctx context.Context, id string, ev inventory.Event) error
}

// TokenAdmin creates, lists and revokes one-time enrollment tokens for
// the labels of Config: `mica est token create` and the admin API both
// go through it, so both apply the same checks.
type TokenAdmin struct {
	Store  TokenStore
	Config Config
	Now    func() time.Time // nil: time.Now
}

// CheckTokenRequest validates a token request against cfg: the label
// exists and accepts tokens, ttl is positive and at most MaxTokenTTL, and
// names has no blank entry and at most MaxTokenNames entries.
//
// Errors wrap inventory.ErrInvalid and name the field at fault.
func CheckTokenRequest(cfg Config, label string, names []string, ttl time.Duration) error {
	l, ok := cfg.Labels[label]
	if !ok {
		return fmt.Errorf("%w: no EST label %q in the configuration", inventory.ErrInvalid, clip(label))
	}
	if !l.Tokens {
		return fmt.Errorf("%w: EST label %q does not accept tokens (est.labels.%s.tokens)", inventory.ErrInvalid, label, label)
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return fmt.Errorf("%w: ttl must be positive and at most %s", inventory.ErrInvalid, ca.HumanDuration(MaxTokenTTL))
	}
	if len(names) > MaxTokenNames {
		return fmt.Errorf("%w: at most %d names", inventory.ErrInvalid, MaxTokenNames)
	}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || len(n) > maxNameLen || strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ',' }) {
			return fmt.Errorf("%w: names: %q is not a name", inventory.ErrInvalid, clip(n))
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// CreateToken checks the request (CheckTokenRequest), makes the token
// (NewToken) and stores its digest with ev, whose Actor becomes the
// token's creator. It returns the stored record and the credential
// ("USER:PASSWORD"), which exists nowhere else afterwards: the caller
// shows it once and must never log it.
func (a *TokenAdmin) CreateToken(ctx context.Context, label string, names []string, ttl time.Duration, ev inventory.Event) (*inventory.ESTToken, string, error) {
	if err := CheckTokenRequest(a.Config, label, names, ttl); err != nil {
		return nil, "", err
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	tok, cred, err := NewToken(label, ttl, names, now())
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", inventory.ErrInvalid, err)
	}
	tok.CreatedBy = ev.Actor
	if ev.Details == nil {
		ev.Details, _ = json.Marshal(map[string]any{"label": label, "names": append([]string{}, tok.Names...), "expires_at": tok.ExpiresAt.UTC()})
	}
	if err := a.Store.CreateESTToken(ctx, tok, ev); err != nil {
		return nil, "", err
	}
	return tok, cred, nil
}

// Tokens lists the tokens, newest first, without their digests.
func (a *TokenAdmin) Tokens(ctx context.Context) ([]inventory.ESTToken, error) {
	return a.Store.ESTTokens(ctx)
}

// RevokeToken deletes an unused token, audited with ev. Errors:
// inventory.ErrNotFound, inventory.ErrConflict for a used token.
func (a *TokenAdmin) RevokeToken(ctx context.Context, id string, ev inventory.Event) error {
	return a.Store.RevokeESTToken(ctx, id, ev)
}

// TokenLabels lists the labels that accept tokens, sorted.
func (a *TokenAdmin) TokenLabels() []string {
	var out []string
	for name, l := range a.Config.Labels {
		if l.Tokens {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
