package config

import (
	"fmt"

	"github.com/mica-pki/mica/enroll"
)

// EST configures the EST front end; docs/est.md describes every field.
// An empty section serves no label (`mica dev` fills in DevEST).
type EST = enroll.Config

// DevEST is what `mica dev` serves when mica.yaml has no est labels: a
// "default" label at /.well-known/est/ on the device profile, accepting
// one-time tokens and MICA client certificates, with serverkeygen from a
// small EC-P256 pool.
func DevEST() EST {
	return EST{
		Default: "default",
		Labels: map[string]enroll.Label{
			"default": {Profile: "device", Tokens: true, ClientCerts: true,
				ServerKeyGen: &enroll.PoolConfig{KeyType: "EC-P256", Size: 20}},
		},
		RateLimit: 600,
	}
}

// DefaultESTRateLimit is how many enrollment requests (simpleenroll,
// simplereenroll, serverkeygen) one client address may make per
// rate_window (default one minute) when mica.yaml sets no rate_limit:
// enough for a provisioning station behind one address enrolling a device
// every fraction of a second, few enough that a client in a loop cannot
// keep the CA busy.
const DefaultESTRateLimit = 300

// EffectiveEST is the EST configuration the server runs with: a
// rate_limit of 0 (or absent) takes DefaultESTRateLimit, a negative one
// turns the limit off (0 to the enroll package).
func EffectiveEST(e EST) EST {
	switch {
	case e.RateLimit == 0:
		e.RateLimit = DefaultESTRateLimit
	case e.RateLimit < 0:
		e.RateLimit = 0
	}
	return e
}

func (c *Config) validateEST() []error {
	if len(c.EST.Labels) == 0 {
		return nil
	}
	est := EffectiveEST(c.EST)
	if err := est.Validate(func(p string) bool { _, ok := c.Profiles[p]; return ok }); err != nil {
		return []error{fmt.Errorf("%v", err)}
	}
	return nil
}
