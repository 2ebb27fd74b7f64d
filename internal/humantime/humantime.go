// Package humantime prints and reads durations the way MICA's
// configuration writes them ("90d", "10y", "1d12h", "90m") rather than
// Go's "2160h0m0s". It is a leaf package so that every layer, the store
// included, shows a person the same spelling.
package humantime

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	day  = 24 * time.Hour
	year = 365 * day // as config.ParseDuration counts it
)

// Format prints d in the largest whole units: "10y", "90d", "1d12h"
// (never "36h"), "1h30m" (never "90m"), "30s"; a remainder below a
// minute is written as Go writes it ("1.5s").
func Format(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + Format(-d)
	case d == 0:
		return "0s"
	case d%year == 0:
		return fmt.Sprintf("%dy", d/year)
	}
	var b strings.Builder
	for _, u := range []struct {
		unit   time.Duration
		suffix string
	}{{day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}} {
		if d >= u.unit {
			fmt.Fprintf(&b, "%d%s", d/u.unit, u.suffix)
			d %= u.unit
		}
	}
	if d > 0 {
		b.WriteString(d.String()) // seconds and below, as Go writes them
	}
	return b.String()
}

// Parse reads what Format writes, and Go durations: an optional whole
// number of years ("y"), then of days ("d"), then a Go duration ("12h30m").
// "1d12h", "7d", "36h" and "1y" all parse. Negative durations do not.
func Parse(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var total time.Duration
	for _, u := range []struct {
		suffix byte
		unit   time.Duration
	}{{'y', year}, {'d', day}} {
		i := strings.IndexByte(s, u.suffix)
		if i < 0 {
			continue
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n < 0 || n > int64(200*year/u.unit) {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		total += time.Duration(n) * u.unit
		s = s[i+1:]
	}
	if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		total += d
	}
	return total, nil
}
