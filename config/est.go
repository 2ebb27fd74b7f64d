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

// DefaultESTCredentialRateLimit is how many enrollment requests one
// credential (client certificate, IDevID, token) may make under one label
// per credential_rate_window (default one hour) when mica.yaml sets no
// credential_rate_limit: a device renews every few weeks and a token is
// used once, so this stops a client in a re-enroll loop within minutes
// while leaving room for a small registration authority enrolling on
// behalf of devices with one certificate (raise it for a large one).
const DefaultESTCredentialRateLimit = 100

// EffectiveEST is the EST configuration the server runs with: a
// rate_limit or credential_rate_limit of 0 (or absent) takes its default,
// a negative one turns the limit off (0 to the enroll package).
func EffectiveEST(e EST) EST {
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&e.RateLimit, DefaultESTRateLimit},
		{&e.CredentialRateLimit, DefaultESTCredentialRateLimit},
	} {
		switch {
		case *f.v == 0:
			*f.v = f.def
		case *f.v < 0:
			*f.v = 0
		}
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
