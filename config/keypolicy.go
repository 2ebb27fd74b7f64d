package config

import (
	"time"

	"github.com/mica-pki/mica/ca"
)

// KeyPolicy is the `key_policy:` section of mica.yaml: cryptoperiods per
// key class (NIST SP 800-57 Part 1 §5.3), how far ahead of a due rotation
// the alert fires, and whether an online root rotates the issuing CA by
// itself. See docs/keys.md.
//
//	key_policy:
//	  cryptoperiods: {root: 10y, issuing: 1y, ocsp-responder: 7d}
//	  rotation_warning: 30d
//	  auto_rotate: true
//	  backup: {dir: /var/backups/mica, every: 24h, keep: 14, recipients: [age1…], max_age: 7d}
type KeyPolicy struct {
	Cryptoperiods   map[string]Duration `yaml:"cryptoperiods,omitempty"`
	RotationWarning Duration            `yaml:"rotation_warning,omitempty"`
	AutoRotate      bool                `yaml:"auto_rotate,omitempty"`
	Backup          BackupPolicy        `yaml:"backup,omitempty"`
}

// BackupPolicy schedules backups from `mica serve` (NIST SP 800-57 Pt1
// §8.2.2.1, ISO/IEC 27002 8.13): every Every into Dir, encrypted to the
// age Recipients, keeping the newest Keep files; and it sets how old the
// last *verified* backup may get (MaxAge) before the alert fires.
type BackupPolicy struct {
	Dir        string   `yaml:"dir,omitempty"`
	Every      Duration `yaml:"every,omitempty"`
	Keep       int      `yaml:"keep,omitempty"`
	Recipients []string `yaml:"recipients,omitempty"`
	MaxAge     Duration `yaml:"max_age,omitempty"`
}

// Interval returns Every or its default, one day.
func (b BackupPolicy) Interval() time.Duration {
	if b.Every > 0 {
		return b.Every.D()
	}
	return Day
}

// Retain returns Keep or its default, 14 backups.
func (b BackupPolicy) Retain() int {
	if b.Keep > 0 {
		return b.Keep
	}
	return 14
}

// MaxVerifiedAge returns MaxAge or its default, 7 days.
func (b BackupPolicy) MaxVerifiedAge() time.Duration {
	if b.MaxAge > 0 {
		return b.MaxAge.D()
	}
	return 7 * Day
}

// DefaultCryptoperiods follow SP 800-57 Part 1 Table 1 for private
// signature keys (1–3 years of originator use), stretched for the root,
// whose certificate is pinned by relying parties and replaced far less
// often than the issuing CAs below it.
var DefaultCryptoperiods = map[string]time.Duration{
	ca.KeyClassRoot:          10 * Year,
	ca.KeyClassIssuing:       Year,
	ca.KeyClassOCSPResponder: 7 * Day,
	ca.KeyClassPoolSeal:      Year,
	ca.KeyClassEABHMAC:       Year,
}

// DefaultRotationWarning is how long before a due rotation the alert fires.
const DefaultRotationWarning = 30 * Day

// CA returns the policy with defaults for the classes not configured.
func (k KeyPolicy) CA() ca.KeyPolicy {
	out := ca.KeyPolicy{Cryptoperiods: map[string]time.Duration{}}
	for c, d := range DefaultCryptoperiods {
		out.Cryptoperiods[c] = d
	}
	for c, d := range k.Cryptoperiods {
		out.Cryptoperiods[c] = d.D()
	}
	return out
}

// Warning returns RotationWarning or its default.
func (k KeyPolicy) Warning() time.Duration {
	if k.RotationWarning > 0 {
		return k.RotationWarning.D()
	}
	return DefaultRotationWarning
}
