package inventory

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"
)

// Key usage per hour (table key_usage_hourly, migration 0009): the signing
// path's counts kept by UTC hour, so the alert engine can compare the last
// hour with the hours before it and /metrics can show the last hour. Rows
// are only ever added to, never overwritten, so replicas flushing into the
// same bucket sum exactly.

// KeyHour is one key's signatures in one UTC hour.
type KeyHour struct {
	KeyID      string    `json:"key_id"`
	Hour       time.Time `json:"hour"` // start of the hour, UTC
	Signatures int64     `json:"signatures"`
	First      time.Time `json:"first"`
	Last       time.Time `json:"last"`
}

// HourOf returns the start of t's UTC hour, the bucket key.
func HourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// RecordKeyUsage is AddKeyUsage plus the hourly buckets, in one
// transaction: each usage is added to its key's lifetime counters and to
// the bucket of the hour its signatures fall in. Every usage must lie in
// one UTC hour (First and Last in the same hour; ca.MeteredKeys counts per
// hour), else ErrInvalid and nothing is written. Usage of a URI with no key
// row is dropped, like AddKeyUsage.
//
// Both writes are increments (signatures = signatures + n, an upsert
// adding to the bucket on conflict), so any number of replicas can flush
// concurrently. Rows are written in (URI, hour) order so two replicas'
// transactions lock them in the same order and cannot deadlock.
func (s *Store) RecordKeyUsage(ctx context.Context, us []KeyUsage) error {
	batch := make([]KeyUsage, 0, len(us))
	for _, u := range us {
		if u.Signatures <= 0 {
			continue
		}
		if u.Last.Before(u.First) {
			u.First, u.Last = u.Last, u.First
		}
		if !HourOf(u.First).Equal(HourOf(u.Last)) {
			return fmt.Errorf("%w: key usage from %s to %s spans more than one hour", ErrInvalid,
				u.First.UTC().Format(time.RFC3339), u.Last.UTC().Format(time.RFC3339))
		}
		batch = append(batch, u)
	}
	if len(batch) == 0 {
		return nil
	}
	sort.Slice(batch, func(i, j int) bool {
		if batch[i].URI != batch[j].URI {
			return batch[i].URI < batch[j].URI
		}
		return batch[i].First.Before(batch[j].First)
	})
	// PostgreSQL types bare parameters in a SELECT list as text; say what
	// they are.
	ts, n := "?", "CAST(? AS BIGINT)"
	if s.dialect == DialectPostgres {
		ts = "CAST(? AS TIMESTAMPTZ)"
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		for _, u := range batch {
			if err := s.addKeyUsageTx(ctx, tx, u); err != nil {
				return err
			}
			first, last := s.timeArg(u.First), s.timeArg(u.Last)
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO key_usage_hourly (key_id, hour, signatures, first_at, last_at)
				SELECT id, `+ts+`, `+n+`, `+ts+`, `+ts+` FROM keys WHERE uri = ? AND uri <> ''
				ON CONFLICT (key_id, hour) DO UPDATE SET signatures = key_usage_hourly.signatures + excluded.signatures,
				first_at = CASE WHEN excluded.first_at < key_usage_hourly.first_at THEN excluded.first_at ELSE key_usage_hourly.first_at END,
				last_at = CASE WHEN excluded.last_at > key_usage_hourly.last_at THEN excluded.last_at ELSE key_usage_hourly.last_at END`),
				s.timeArg(HourOf(u.First)), u.Signatures, first, last, u.URI); err != nil {
				return fmt.Errorf("inventory: add hourly key usage: %w", err)
			}
		}
		return nil
	})
}

// KeyUsageHours returns every hourly bucket whose hour is at or after
// since, by key and then hour.
func (s *Store) KeyUsageHours(ctx context.Context, since time.Time) ([]KeyHour, error) {
	var rows []struct {
		KeyID      string `db:"key_id"`
		Hour       dbTime `db:"hour"`
		Signatures int64  `db:"signatures"`
		First      dbTime `db:"first_at"`
		Last       dbTime `db:"last_at"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.q(`SELECT key_id, hour, signatures, first_at, last_at
		FROM key_usage_hourly WHERE hour >= ? ORDER BY key_id, hour`), s.timeArg(HourOf(since))); err != nil {
		return nil, fmt.Errorf("inventory: read hourly key usage: %w", err)
	}
	out := make([]KeyHour, len(rows))
	for i, r := range rows {
		out[i] = KeyHour{KeyID: r.KeyID, Hour: r.Hour.Time, Signatures: r.Signatures, First: r.First.Time, Last: r.Last.Time}
	}
	return out, nil
}

// PruneKeyUsageHours deletes the buckets of hours before before and
// returns how many went. The alert engine calls it under its job lock to
// keep only the baseline it reads; the lifetime totals stay on the keys.
func (s *Store) PruneKeyUsageHours(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM key_usage_hourly WHERE hour < ?`), s.timeArg(HourOf(before)))
	if err != nil {
		return 0, fmt.Errorf("inventory: prune hourly key usage: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
