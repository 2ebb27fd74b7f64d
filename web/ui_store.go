package web

import (
	"context"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// uiStore is what the CA-health, issuer and login-throttle views read
// beyond Store; Store embeds it, and *inventory.Store satisfies both.
type uiStore interface {
	// Issuer returns one issuer; ErrNotFound if none.
	Issuer(ctx context.Context, id string) (*inventory.Issuer, error)
	// Keys lists the key inventory, oldest first.
	Keys(ctx context.Context) ([]inventory.Key, error)
	// LatestCRL returns an issuer's newest CRL; ErrNotFound if none.
	LatestCRL(ctx context.Context, issuerID string, shard int, delta bool) (*inventory.CRL, error)
	// OCSPFreshnessByIssuer summarises the pre-signed OCSP responses.
	OCSPFreshnessByIssuer(ctx context.Context) ([]inventory.OCSPFreshness, error)
	// LoginSourceThrottle says until when a source address may not log in.
	LoginSourceThrottle(ctx context.Context, source string, limit int, window time.Duration, now time.Time) (time.Time, error)
}
