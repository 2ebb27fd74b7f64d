package enroll

import (
	"context"
	"time"

	"github.com/mica-pki/mica/ca"
)

// defaultCredentialRateWindow is the credential rate window when the
// configuration sets none.
const defaultCredentialRateWindow = time.Hour

// allowCredential spends one unit of the budget of requester (the
// authenticated credential: a client certificate, an IDevID, a token)
// under label l, counted in the store so replicas share it. It bounds
// what one credential can obtain whatever address it comes from, which
// the per-address limit (allow) cannot: a device in a re-enroll loop, or
// a stolen client certificate used from many addresses. It returns a
// rate-limited error with Retry-After, or ErrUnavailable when the store
// cannot count.
func (s *Server) allowCredential(ctx context.Context, l *label, requester string) error {
	if s.cfg.CredentialRateLimit <= 0 {
		return nil
	}
	window := s.cfg.CredentialRateWindow
	if window <= 0 {
		window = defaultCredentialRateWindow
	}
	// "cred|" keeps these counters apart from the per-address ones in
	// the same table (an address never contains '|').
	hits, until, err := s.store.HitESTRate(ctx, "cred|"+l.name+"|"+requester, window, s.now())
	if err != nil {
		return ca.Wrap(ca.ErrUnavailable, err, "rate limiter unavailable")
	}
	if hits > int64(s.cfg.CredentialRateLimit) {
		retry := max(1, int(until.Sub(s.now()).Round(time.Second)/time.Second))
		return &retryError{ca.Errorf(ca.ErrRateLimited, "this credential has made %d enrollment requests under label %s in this window (limit %d); retry in %d s",
			hits, l.name, s.cfg.CredentialRateLimit, retry), retry}
	}
	return nil
}
