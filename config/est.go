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

func (c *Config) validateEST() []error {
	if len(c.EST.Labels) == 0 {
		return nil
	}
	if err := c.EST.Validate(func(p string) bool { _, ok := c.Profiles[p]; return ok }); err != nil {
		return []error{fmt.Errorf("%v", err)}
	}
	return nil
}
