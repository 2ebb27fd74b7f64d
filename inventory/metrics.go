package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// The read-only aggregates behind MICA's Prometheus collector (package
// metrics). Each is one grouped query that an index serves, so a scrape
// stays cheap at a million certificates; the collector caches them.

// StateCount is how many certificates are in one effective state
// ("expired" derived from now, like Certificate.EffectiveState).
type StateCount struct {
	State State
	Count int64
}

// CertificateStateCounts counts certificates by effective state at now.
// Reservations that never completed (requested, failed) are included under
// their stored state.
func (s *Store) CertificateStateCounts(ctx context.Context, now time.Time) ([]StateCount, error) {
	var rows []struct {
		State   string `db:"state"`
		Expired int    `db:"expired"`
		N       int64  `db:"n"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.q(`SELECT state,
		CASE WHEN state = 'issued' AND not_after <= ? THEN 1 ELSE 0 END AS expired, COUNT(*) AS n
		FROM certificates GROUP BY 1, 2`), s.timeArg(now)); err != nil {
		return nil, fmt.Errorf("inventory: count certificates by state: %w", err)
	}
	byState := map[State]int64{}
	var order []State
	for _, r := range rows {
		st := State(r.State)
		if r.Expired == 1 {
			st = StateExpired
		}
		if _, ok := byState[st]; !ok {
			order = append(order, st)
		}
		byState[st] += r.N
	}
	out := make([]StateCount, 0, len(order))
	for _, st := range order {
		out = append(out, StateCount{State: st, Count: byState[st]})
	}
	return out, nil
}

// IssuerTime is a time per issuer.
type IssuerTime struct {
	IssuerID string
	Time     time.Time
}

// EarliestExpiry returns, per issuer, the earliest notAfter of its issued
// certificates that have not expired at now. Issuers with none are absent.
func (s *Store) EarliestExpiry(ctx context.Context, now time.Time) ([]IssuerTime, error) {
	return s.issuerTimes(ctx, `SELECT issuer_id, MIN(not_after) AS t FROM certificates
		WHERE state = 'issued' AND not_after > ? GROUP BY issuer_id ORDER BY issuer_id`, s.timeArg(now))
}

// CRLNextUpdates returns, per issuer, the earliest nextUpdate among its
// stored full (non-delta) CRLs: the moment the oldest of its published
// CRLs goes stale. Issuers without a CRL are absent.
func (s *Store) CRLNextUpdates(ctx context.Context) ([]IssuerTime, error) {
	return s.issuerTimes(ctx, `SELECT issuer_id, MIN(next_update) AS t FROM crls
		WHERE delta = 0 GROUP BY issuer_id ORDER BY issuer_id`)
}

func (s *Store) issuerTimes(ctx context.Context, query string, args ...any) ([]IssuerTime, error) {
	var rows []struct {
		IssuerID string `db:"issuer_id"`
		T        dbTime `db:"t"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.q(query), args...); err != nil {
		return nil, fmt.Errorf("inventory: per-issuer times: %w", err)
	}
	out := make([]IssuerTime, 0, len(rows))
	for _, r := range rows {
		if r.T.Valid {
			out = append(out, IssuerTime{IssuerID: r.IssuerID, Time: r.T.Time})
		}
	}
	return out, nil
}

// EventCount is how many audit events with one action, protocol and
// outcome were appended.
type EventCount struct {
	Action   string `db:"action"`
	Protocol string `db:"protocol"`
	Outcome  string `db:"outcome"`
	Count    int64  `db:"n"`
}

// EventCountsSince counts the audit events with id > afterID that are
// issuances ("cert.issue"), revocations ("cert.revoke") or denied
// actions, grouped by action, protocol and outcome, and returns the id
// up to which it counted. Calling it again with that id counts only newer
// events (a primary-key range), which is how the metrics collector keeps
// monotonic counters without rescanning the log. Events are append-only,
// so counts only ever grow. A denial summary (ActionDeniedSummary)
// counts as the denials it stands for, under each kind it lists
// ("api.bearer", "acme.jws.malformed", …) as the action.
func (s *Store) EventCountsSince(ctx context.Context, afterID int64) ([]EventCount, int64, error) {
	var last int64
	if err := s.db.GetContext(ctx, &last, `SELECT last_id FROM event_chain_head WHERE id = 1`); err != nil {
		return nil, afterID, fmt.Errorf("inventory: read audit chain head: %w", err)
	}
	if last <= afterID {
		return nil, afterID, nil
	}
	var out []EventCount
	if err := s.db.SelectContext(ctx, &out, s.q(`SELECT action, protocol, outcome, COUNT(*) AS n FROM events
		WHERE id > ? AND id <= ? AND (action IN ('cert.issue', 'cert.revoke') OR outcome = 'denied') AND action <> ?
		GROUP BY action, protocol, outcome`), afterID, last, ActionDeniedSummary); err != nil {
		return nil, afterID, fmt.Errorf("inventory: count events: %w", err)
	}
	var sums []struct {
		Protocol string `db:"protocol"`
		Details  string `db:"details"`
	}
	if err := s.db.SelectContext(ctx, &sums, s.q(`SELECT protocol, details FROM events WHERE id > ? AND id <= ? AND action = ?`),
		afterID, last, ActionDeniedSummary); err != nil {
		return nil, afterID, fmt.Errorf("inventory: read denial summaries: %w", err)
	}
	kinds := map[[2]string]int64{}
	for _, d := range sums {
		var v struct {
			Kinds map[string]int64 `json:"kinds"`
		}
		if json.Unmarshal([]byte(d.Details), &v) != nil {
			continue
		}
		for k, n := range v.Kinds {
			kinds[[2]string{k, d.Protocol}] += n
		}
	}
	for k, n := range kinds {
		out = append(out, EventCount{Action: k[0], Protocol: k[1], Outcome: "denied", Count: n})
	}
	return out, last, nil
}
