package config

import (
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/ca"
)

// TestKeyPolicyRetention: key_policy.retention overrides the defaults per
// class (an explicit 0 included), the other classes keep
// DefaultRetention, and a negative period is reported by CheckRetention.
func TestKeyPolicyRetention(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		want    map[string]time.Duration
		wantErr string
	}{
		{name: "defaults", yaml: "",
			want: map[string]time.Duration{ca.KeyClassRoot: Year, ca.KeyClassIssuing: 90 * Day, ca.KeyClassOCSPResponder: 0}},
		{name: "overrides", yaml: "key_policy:\n  retention: {issuing: 0, root: 2y, pool-seal: 30d}\n",
			want: map[string]time.Duration{ca.KeyClassRoot: 2 * Year, ca.KeyClassIssuing: 0, ca.KeyClassPoolSeal: 30 * Day, ca.KeyClassEABHMAC: 0}},
		{name: "negative", yaml: "key_policy:\n  retention: {issuing: -1h}\n", wantErr: "key_policy.retention.issuing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), t.TempDir())
			if tc.wantErr != "" {
				// Validation at load refuses it, before any command runs.
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Parse(%q) = %v, want an error naming %s", tc.yaml, err, tc.wantErr)
				}
				if c != nil {
					err = c.KeyPolicy.CheckRetention()
				}
			} else if err != nil {
				t.Fatalf("Parse(%q) = %v", tc.yaml, err)
			} else {
				err = c.KeyPolicy.CheckRetention()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("CheckRetention() = %v, want an error naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckRetention() = %v", err)
			}
			got := c.KeyPolicy.CA().Retention
			for class, want := range tc.want {
				if d, ok := got[class]; !ok || d != want {
					t.Errorf("CA().Retention[%s] = %v (set %v), want %v", class, d, ok, want)
				}
			}
		})
	}
}
