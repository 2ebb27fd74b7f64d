package config

import (
	"fmt"
	"time"

	"github.com/mica-pki/mica/ca"
)

// Revocation is the `revocation:` section of mica.yaml: how long CRLs and
// OCSP responses are valid, how revocations are batched, and whether CRLs
// are sharded and OCSP is signed by a delegated responder. See
// docs/revocation.md.
type Revocation struct {
	CRLValidity        Duration `yaml:"crl_validity"`        // nextUpdate − thisUpdate (default 24h); re-signed at half
	CRLDelay           Duration `yaml:"crl_delay"`           // batch window after a revocation (default 2s)
	CRLShards          int      `yaml:"crl_shards"`          // 0 or 1: one CRL per issuer; N: N partitions + the full CRL
	DeltaCRL           bool     `yaml:"delta_crl"`           // publish {issuer}-delta.crl
	OCSPValidity       Duration `yaml:"ocsp_validity"`       // default 24h; refreshed at half
	DelegatedResponder bool     `yaml:"delegated_responder"` // sign OCSP with a short-lived responder cert, not the CA key
	ResponderValidity  Duration `yaml:"responder_validity"`  // delegated responder lifetime (default 7d)
}

func (r *Revocation) applyDefaults() {
	def := func(p *Duration, v time.Duration) {
		if *p == 0 {
			*p = Duration(v)
		}
	}
	def(&r.CRLValidity, ca.DefaultCRLValidity)
	def(&r.CRLDelay, ca.DefaultCRLDelay)
	def(&r.OCSPValidity, ca.DefaultOCSPValidity)
	def(&r.ResponderValidity, ca.DefaultResponderValidity)
}

// validate reports problems naming the mica.yaml field.
func (r *Revocation) validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("revocation.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if d := r.CRLValidity.D(); d < time.Hour || d > 366*24*time.Hour {
		bad("crl_validity", "must be between 1h and 366d, got %s", r.CRLValidity)
	}
	if d := r.CRLDelay.D(); d < 0 || d > time.Hour || d >= r.CRLValidity.D()/2 {
		bad("crl_delay", "must be between 0 and 1h and under half of crl_validity, got %s", r.CRLDelay)
	}
	if r.CRLShards < 0 || r.CRLShards > 1024 {
		bad("crl_shards", "must be between 0 and 1024, got %d", r.CRLShards)
	}
	if d := r.OCSPValidity.D(); d < 10*time.Minute || d > 7*24*time.Hour {
		bad("ocsp_validity", "must be between 10m and 7d (RFC 5019 clients expect days at most), got %s", r.OCSPValidity)
	}
	if d := r.ResponderValidity.D(); d < time.Hour || d > 90*24*time.Hour {
		bad("responder_validity", "must be between 1h and 90d (the certificate cannot be revoked: keep it short), got %s", r.ResponderValidity)
	}
	return errs
}

// CA converts the section for ca.Options.Revocation.
func (r Revocation) CA() ca.RevocationConfig {
	return ca.RevocationConfig{
		CRLValidity: r.CRLValidity.D(), CRLDelay: r.CRLDelay.D(), CRLShards: r.CRLShards, DeltaCRL: r.DeltaCRL,
		OCSPValidity: r.OCSPValidity.D(), DelegatedResponder: r.DelegatedResponder, ResponderValidity: r.ResponderValidity.D(),
	}
}
