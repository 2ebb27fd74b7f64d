package inventory

import (
	"context"
	"fmt"
	"time"
)

// OCSPFreshness is how fresh one issuer's pre-signed OCSP responses are.
type OCSPFreshness struct {
	IssuerID         string
	Responses        int64
	OldestThisUpdate time.Time // the oldest response's thisUpdate
	EarliestNext     time.Time // the earliest nextUpdate: when the first response goes stale
}

// OCSPFreshnessByIssuer returns, per issuer with pre-signed responses, their
// count, oldest thisUpdate and earliest nextUpdate: one grouped query for
// the metrics collector (OCSP freshness, next to the CRL's).
func (s *Store) OCSPFreshnessByIssuer(ctx context.Context) ([]OCSPFreshness, error) {
	var rows []struct {
		IssuerID string `db:"issuer_id"`
		N        int64  `db:"n"`
		Oldest   dbTime `db:"oldest"`
		Next     dbTime `db:"next"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT issuer_id, COUNT(*) AS n, MIN(this_update) AS oldest, MIN(next_update) AS next
		FROM ocsp_responses GROUP BY issuer_id ORDER BY issuer_id`); err != nil {
		return nil, fmt.Errorf("inventory: OCSP freshness: %w", err)
	}
	out := make([]OCSPFreshness, 0, len(rows))
	for _, r := range rows {
		out = append(out, OCSPFreshness{IssuerID: r.IssuerID, Responses: r.N, OldestThisUpdate: r.Oldest.Time, EarliestNext: r.Next.Time})
	}
	return out, nil
}
