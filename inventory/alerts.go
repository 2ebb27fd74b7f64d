package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"
)

// AlertsSentSince returns, of the given subjects of one alert kind, those
// delivered at or after since (the alert engine's de-duplication).
func (s *Store) AlertsSentSince(ctx context.Context, kind string, subjects []string, since time.Time) (map[string]bool, error) {
	out := map[string]bool{}
	for len(subjects) > 0 {
		n := min(len(subjects), 500)
		chunk := subjects[:n]
		subjects = subjects[n:]
		args := []any{kind, s.timeArg(since)}
		ph := ""
		for i, sub := range chunk {
			if i > 0 {
				ph += ", "
			}
			ph += "?"
			args = append(args, sub)
		}
		var got []string
		if err := s.db.SelectContext(ctx, &got, s.q(`SELECT subject FROM alert_state
			WHERE kind = ? AND last_sent >= ? AND subject IN (`+ph+`)`), args...); err != nil {
			return nil, fmt.Errorf("inventory: read alert state: %w", err)
		}
		for _, g := range got {
			out[g] = true
		}
	}
	return out, nil
}

// MarkAlertsSentEvent records that the subjects of one alert kind were
// delivered at at, forgets entries not sent since before forgetBefore (so
// the table holds only what the repeat interval still needs), and appends
// ev (the audit record of the delivery) in the same transaction, so an
// alert is marked sent exactly when its audit event exists. ev defaults: Action
// "alert.send", Object "alert:{kind}", Actor and Protocol "system",
// Outcome "ok".
func (s *Store) MarkAlertsSentEvent(ctx context.Context, kind string, subjects []string, at, forgetBefore time.Time, ev Event) error {
	defaultEvent(&ev, "alert.send", "alert:"+kind)
	if ev.Actor == "" {
		ev.Actor = "system"
	}
	if ev.Protocol == "" {
		ev.Protocol = "system"
	}
	if ev.Outcome == "" {
		ev.Outcome = "ok"
	}
	if ev.Time.IsZero() {
		ev.Time = at
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.markAlertsSentTx(ctx, tx, kind, subjects, at, forgetBefore); err != nil {
			return err
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// SourceCount is how many events came from one source.
type SourceCount struct {
	Source string `db:"source"`
	Count  int64  `db:"n"`
}

// ActionDeniedSummary is the audit action of a per-source, per-window
// summary of unauthenticated denials (inventory/denials): its details
// carry "count", the number of denials it stands for.
const ActionDeniedSummary = "auth.denied.summary"

// DeniedBySource counts denials at or after since, per source (remote
// address), most first: each audit event with outcome "denied" counts
// one, except a summary (ActionDeniedSummary), which counts the denials
// it summarises. Summaries are bounded per window (replicas × sources),
// so reading their details here stays cheap.
func (s *Store) DeniedBySource(ctx context.Context, since time.Time) ([]SourceCount, error) {
	var single []SourceCount
	if err := s.db.SelectContext(ctx, &single, s.q(`SELECT source, COUNT(*) AS n FROM events
		WHERE at >= ? AND outcome = 'denied' AND action <> ? GROUP BY source`), s.timeArg(since), ActionDeniedSummary); err != nil {
		return nil, fmt.Errorf("inventory: count denied events: %w", err)
	}
	var sums []struct {
		Source  string `db:"source"`
		Details string `db:"details"`
	}
	if err := s.db.SelectContext(ctx, &sums, s.q(`SELECT source, details FROM events
		WHERE action = ? AND at >= ? AND outcome = 'denied'`), ActionDeniedSummary, s.timeArg(since)); err != nil {
		return nil, fmt.Errorf("inventory: read denial summaries: %w", err)
	}
	total := map[string]int64{}
	for _, c := range single {
		total[c.Source] += c.Count
	}
	for _, d := range sums {
		var v struct {
			Count int64 `json:"count"`
		}
		if json.Unmarshal([]byte(d.Details), &v) == nil && v.Count > 0 {
			total[d.Source] += v.Count
		}
	}
	out := make([]SourceCount, 0, len(total))
	for src, n := range total {
		out = append(out, SourceCount{Source: src, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Source < out[j].Source
	})
	return out, nil
}

func (s *Store) markAlertsSentTx(ctx context.Context, tx *sqlx.Tx, kind string, subjects []string, at, forgetBefore time.Time) error {
	for _, sub := range subjects {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO alert_state (kind, subject, last_sent) VALUES (?, ?, ?)
			ON CONFLICT (kind, subject) DO UPDATE SET last_sent = excluded.last_sent`), kind, sub, s.timeArg(at)); err != nil {
			return fmt.Errorf("inventory: record alert: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM alert_state WHERE last_sent < ?`), s.timeArg(forgetBefore)); err != nil {
		return fmt.Errorf("inventory: prune alert state: %w", err)
	}
	return nil
}
