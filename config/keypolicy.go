package config

import (
	"fmt"
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
//	  retention: {root: 1y, issuing: 90d, ocsp-responder: 0}
//	  auto_rotate: true
//	  early_migration: 30d
//	  backup: {dir: /var/backups/mica, every: 24h, keep: 14, recipients: [age1…], max_age: 7d}
type KeyPolicy struct {
	Cryptoperiods   map[string]Duration `yaml:"cryptoperiods,omitempty"`
	RotationWarning Duration            `yaml:"rotation_warning,omitempty"`
	// Retention per key class: a retired key may be destroyed only this
	// long after its retirement (DefaultRetention for classes not listed;
	// an explicit 0 allows destroying at once).
	Retention  map[string]Duration `yaml:"retention,omitempty"`
	AutoRotate bool                `yaml:"auto_rotate,omitempty"`
	// EarlyMigration: after a new issuing CA activates, ACME ARI suggests
	// that certificates of the issuer it superseded renew within this
	// period, each at a slot spread by serial. Zero: renew at once.
	EarlyMigration Duration     `yaml:"early_migration,omitempty"`
	Backup         BackupPolicy `yaml:"backup,omitempty"`
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
	ca.KeyClassEABSeal:       Year,
	ca.KeyClassWebhookHMAC:   Year,
}

// DefaultRetention is how long a retired key of each class is kept before
// `mica keys destroy` may remove it (NIST SP 800-57 Part 1 §8.3.4: keys
// are destroyed once no longer needed; the period leaves time to notice a
// mistaken retirement, to re-sign a CRL in an incident, or to finish an
// audit). OCSP responder keys and HMAC secrets sign nothing that outlives
// them, so nothing is kept.
var DefaultRetention = map[string]time.Duration{
	ca.KeyClassRoot:          Year,
	ca.KeyClassIssuing:       90 * Day,
	ca.KeyClassOCSPResponder: 0,
	ca.KeyClassPoolSeal:      90 * Day,
	ca.KeyClassEABHMAC:       0,
	ca.KeyClassEABSeal:       90 * Day,
	ca.KeyClassWebhookHMAC:   0,
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
	out.Retention = map[string]time.Duration{}
	for c, d := range DefaultRetention {
		out.Retention[c] = d
	}
	for c, d := range k.Retention {
		out.Retention[c] = d.D()
	}
	return out
}

// CheckRetention reports a negative retention period, naming the setting.
func (k KeyPolicy) CheckRetention() error {
	for c, d := range k.Retention {
		if d < 0 {
			return fmt.Errorf("key_policy.retention.%s: %s is negative", c, time.Duration(d))
		}
	}
	return nil
}

// Warning returns RotationWarning or its default.
func (k KeyPolicy) Warning() time.Duration {
	if k.RotationWarning > 0 {
		return k.RotationWarning.D()
	}
	return DefaultRotationWarning
}
