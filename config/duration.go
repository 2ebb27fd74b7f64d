package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Day and Year are the units CA operators think in. A year is 365 days: CA
// validity is a policy number, not a calendar computation.
const (
	Day  = 24 * time.Hour
	Year = 365 * Day
)

// ParseDuration accepts Go durations ("36h", "90m") and whole days or years
// ("90d", "10y"), the forms used for certificate lifetimes on the command
// line and in mica.yaml.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n := len(s); n > 1 && (s[n-1] == 'd' || s[n-1] == 'y') {
		v, err := strconv.ParseInt(s[:n-1], 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("invalid duration %q (want e.g. 90d, 10y, 36h)", s)
		}
		unit := Day
		if s[n-1] == 'y' {
			unit = Year
		}
		if v > int64(200*Year/unit) {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		return time.Duration(v) * unit, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want e.g. 90d, 10y, 36h)", s)
	}
	return d, nil
}

// FormatDuration is the inverse of ParseDuration, preferring the largest
// whole unit so a dump reads "10y" rather than "87600h0m0s".
func FormatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%Year == 0:
		return strconv.FormatInt(int64(d/Year), 10) + "y"
	case d%Day == 0:
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	s := d.String()
	// time.Duration.String writes "2h0m0s"; drop the zero tails.
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Duration is a time.Duration that reads and writes as ParseDuration /
// FormatDuration text in YAML.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// MarshalYAML writes the human form.
func (d Duration) MarshalYAML() (any, error) { return FormatDuration(time.Duration(d)), nil }

// UnmarshalYAML reads the human form.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

var durationType = reflect.TypeFor[time.Duration]()

// durationFields lists the YAML keys of t's time.Duration fields. ca.Profile
// uses plain time.Duration (ca does not know about YAML niceties), so the
// profiles section is fixed up on the node tree instead.
func durationFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type != durationType {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name != "-" {
			out[name] = true
		}
	}
	return out
}

// rewriteProfileDurations walks the mapping of profiles (name → profile
// mapping) and rewrites the duration scalars with fix. It is used in both
// directions: "90d" → "2160h" before decoding (yaml.v3 understands only Go
// syntax) and "2160h0m0s" → "90d" after encoding.
func rewriteProfileDurations(profiles *yaml.Node, fix func(*yaml.Node) error) error {
	if profiles == nil || profiles.Kind != yaml.MappingNode {
		return nil
	}
	fields := durationFields(reflect.TypeFor[profileFields]())
	for i := 1; i < len(profiles.Content); i += 2 {
		p := profiles.Content[i]
		if p.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(p.Content); j += 2 {
			if fields[p.Content[j].Value] && p.Content[j+1].Kind == yaml.ScalarNode {
				if err := fix(p.Content[j+1]); err != nil {
					return fmt.Errorf("profiles.%s.%s: %w", profiles.Content[i-1].Value, p.Content[j].Value, err)
				}
			}
		}
	}
	return nil
}

// humanToGo rewrites "90d"/"10y" to Go syntax so yaml.v3 can decode it.
func humanToGo(n *yaml.Node) error {
	d, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	n.Value, n.Tag, n.Style = d.String(), "!!str", 0
	return nil
}

// goToHuman rewrites what yaml.v3 writes for a time.Duration ("720h0m0s")
// into FormatDuration text ("30d").
func goToHuman(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return nil // not a duration we wrote; leave it
	}
	n.Value, n.Tag, n.Style = FormatDuration(v), "!!str", 0
	return nil
}
