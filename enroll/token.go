package enroll

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// NewToken makes a one-time enrollment token for label, valid for ttl,
// bound to names (bare names are DNS names; "ip:", "uri:", "email:" and
// "dns:" prefixes are kept). It returns the record to store, which holds
// only the secret's SHA-256, and the credential to hand to the device
// once, as "USER:PASSWORD" for HTTP Basic.
func NewToken(label string, ttl time.Duration, names []string, now time.Time) (*inventory.ESTToken, string, error) {
	id := make([]byte, 9)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, "", err
	}
	if _, err := rand.Read(secret); err != nil {
		return nil, "", err
	}
	user := "est-" + hex.EncodeToString(id)
	pass := base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(pass))
	var bound []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		switch {
		case strings.HasPrefix(n, "dns:"), strings.HasPrefix(n, "ip:"), strings.HasPrefix(n, "uri:"), strings.HasPrefix(n, "email:"):
		case net.ParseIP(strings.Trim(n, "[]")) != nil:
			n = "ip:" + strings.Trim(n, "[]")
		case strings.Contains(n, "@"):
			n = "email:" + n
		default:
			n = "dns:" + n
		}
		bound = append(bound, n)
	}
	if ttl <= 0 {
		return nil, "", fmt.Errorf("token lifetime must be positive")
	}
	return &inventory.ESTToken{ID: user, Label: label, SecretSHA256: hex.EncodeToString(sum[:]), Names: bound,
		ExpiresAt: now.Add(ttl), CreatedAt: now}, user + ":" + pass, nil
}
