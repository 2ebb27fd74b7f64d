package inventory

import (
	"context"
	"fmt"
	"time"
)

// DayCount is how many certificates were issued on one UTC day.
type DayCount struct {
	Day   string `db:"day" json:"day"` // YYYY-MM-DD
	Count int    `db:"n" json:"count"`
}

// IssuedPerDay counts certificates created (reserved) per UTC day since
// since, oldest first, for the dashboard chart. Days without issuance are
// absent.
func (s *Store) IssuedPerDay(ctx context.Context, since time.Time) ([]DayCount, error) {
	day := `substr(created_at, 1, 10)`
	if s.dialect == DialectPostgres {
		day = `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`
	}
	var out []DayCount
	if err := s.db.SelectContext(ctx, &out, s.q(`SELECT `+day+` AS day, COUNT(*) AS n FROM certificates
		WHERE created_at >= ? AND state <> 'failed' GROUP BY `+day+` ORDER BY day`), s.timeArg(since)); err != nil {
		return nil, fmt.Errorf("inventory: issued per day: %w", err)
	}
	return out, nil
}
