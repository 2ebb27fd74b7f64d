package enroll_test

import (
	"strings"
	"testing"

	"github.com/mica-pki/mica/enroll"
)

// TestConfigValidate: each operator mistake is reported naming its field.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	known := func(p string) bool { return p == "device" }
	ok := enroll.Label{Profile: "device", Tokens: true}
	tests := []struct {
		name string
		cfg  enroll.Config
		want string // "" means valid
	}{
		{"valid", enroll.Config{Default: "a", Labels: map[string]enroll.Label{"a": ok}}, ""},
		{"default not a label", enroll.Config{Default: "b", Labels: map[string]enroll.Label{"a": ok}}, "est.default"},
		{"label named like an operation", enroll.Config{Labels: map[string]enroll.Label{"cacerts": ok}}, "cannot be a label name"},
		{"unknown profile", enroll.Config{Labels: map[string]enroll.Label{"a": {Profile: "server"}}}, "unknown profile"},
		{"bad key type", enroll.Config{Labels: map[string]enroll.Label{"a": {Profile: "device", ServerKeyGen: &enroll.PoolConfig{KeyType: "DSA"}}}}, "serverkeygen"},
		{"negative pool", enroll.Config{Labels: map[string]enroll.Label{"a": {Profile: "device", ServerKeyGen: &enroll.PoolConfig{KeyType: "EC-P256", Size: -1}}}}, "pool_size"},
		{"serverkeygen held for approval", enroll.Config{Labels: map[string]enroll.Label{"a": {Profile: "device", Tokens: true, Approval: true,
			ServerKeyGen: &enroll.PoolConfig{KeyType: "EC-P256"}}}}, "serverkeygen cannot be combined with approval"},
		{"unknown idevid mapping", enroll.Config{Labels: map[string]enroll.Label{"a": {Profile: "device", ClientCerts: true, TrustedRoots: []string{"r.pem"}, IDevIDIdentity: "anything"}}}, "idevid_identity"},
		{"idevid approval without approval", enroll.Config{Labels: map[string]enroll.Label{"a": {Profile: "device", ClientCerts: true, TrustedRoots: []string{"r.pem"}, IDevIDIdentity: "approval"}}}, "needs approval"},
		{"idevid token without tokens", enroll.Config{Labels: map[string]enroll.Label{"a": {Profile: "device", ClientCerts: true, TrustedRoots: []string{"r.pem"}, IDevIDIdentity: "token"}}}, "needs tokens"},
		{"idevid mapping without roots", enroll.Config{Labels: map[string]enroll.Label{"a": {Profile: "device", ClientCerts: true, IDevIDIdentity: "subject"}}}, "without trusted_roots"},
		{"roots without client_certs", enroll.Config{Labels: map[string]enroll.Label{"a": {Profile: "device", Tokens: true, TrustedRoots: []string{"r.pem"}}}}, "needs client_certs"},
		{"unknown renew profile", enroll.Config{Labels: map[string]enroll.Label{"a": {Profile: "device", ClientCerts: true, RenewProfiles: []string{"server"}}}}, "renew_profiles"},
		{"bad proxy", enroll.Config{TrustedProxies: []string{"10.0.0.1"}}, "trusted_proxies"},
		{"negative rate", enroll.Config{RateLimit: -1}, "rate_limit"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate(known)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate(%s) = %v, want nil", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(%s) = %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}
