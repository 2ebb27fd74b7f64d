package humantime

import (
	"testing"
	"time"
)

func TestFormatParse(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{90 * day, "90d"},
		{3650 * day, "10y"},
		{36 * time.Hour, "1d12h"},
		{24 * time.Hour, "1d"},
		{6 * time.Hour, "6h"},
		{90 * time.Minute, "1h30m"},
		{30 * time.Second, "30s"},
		{day + 1500*time.Millisecond, "1d1.5s"},
		{400 * day, "400d"},
	} {
		got := Format(tc.in)
		if got != tc.want {
			t.Errorf("Format(%v) = %q, want %q", tc.in, got, tc.want)
		}
		// Every printed duration reads back as itself.
		if back, err := Parse(got); err != nil || back != tc.in {
			t.Errorf("Parse(%q) = %v, %v; want %v", got, back, err, tc.in)
		}
	}
	if got := Format(-48 * time.Hour); got != "-2d" {
		t.Errorf("Format(-48h) = %q, want -2d", got)
	}
	for _, bad := range []string{"", "d", "xd", "-1d", "1d-1h", "1dd", "5", "1w"} {
		if d, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, d)
		}
	}
	if d, err := Parse("168h0m0s"); err != nil || d != 7*day {
		t.Errorf("Parse(Go form) = %v, %v", d, err)
	}
}
