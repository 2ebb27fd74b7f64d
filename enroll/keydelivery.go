package enroll

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
)

// What a serverkeygen label delivers, and to whom.
//
// libest (Cisco's EST library, which most device stacks embed) accepts a
// server-generated key only if the base64 text of the key part is at
// least 256 characters (EST_MIN_CLIENT_PKEY_LEN; shorter parts fail as
// "Malformed payload; data too short") and it reads the decoded key as an
// RSA key (d2i_PrivateKey with EVP_PKEY_RSA). As PKCS#8, an EC-P256 key
// is 138 bytes (184 base64 characters), EC-P384 185 bytes (248; 252 with
// line breaks), Ed25519 48 bytes: all too short, and none RSA. An RSA-2048
// key is 1,216 bytes (1,624 characters). So libest can take RSA keys
// only, and it refuses anything else only after the answer arrived,
// which means after MICA spent the one-time token, the pooled key and a
// certificate.
//
// libest identifies itself: every request it builds carries
// "User-Agent: libest <version>" (its PACKAGE_STRING, fixed at build time
// and not settable by the application). That is the one client MICA can
// recognise server-side, so a serverkeygen request from libest on a label
// whose key type libest cannot take is refused before anything is spent.
// Other clients (curl+openssl, globalsign estclient, anything built on a
// general-purpose CMS/PKCS#8 parser) take every key type MICA generates.

// errNotAcceptable marks a serverkeygen request from a client that cannot
// accept the key type the label delivers: 406, since what is wrong is the
// representation the server would answer with, not who asked (403) or
// what they sent (400).
var errNotAcceptable = errors.New("not acceptable")

// isLibest reports whether r comes from libest, by its fixed User-Agent.
func isLibest(r *http.Request) bool {
	return strings.HasPrefix(strings.ToLower(r.UserAgent()), "libest")
}

// libestTakes reports whether libest can accept a server-generated key of
// type kt (see the comment at the top of this file).
func libestTakes(kt hsm.KeyType) bool {
	switch kt {
	case hsm.RSA2048, hsm.RSA3072, hsm.RSA4096:
		return true
	}
	return false
}

// Delivers says what a serverkeygen label hands out and which known
// clients cannot take it, for the start-up log. It is empty when c is nil
// or names no valid key type.
func (c *PoolConfig) Delivers() string {
	if c == nil {
		return ""
	}
	kt, err := hsm.ParseKeyType(c.KeyType)
	if err != nil {
		return ""
	}
	if libestTakes(kt) {
		return fmt.Sprintf("%s keys as PKCS#8 (every EST client, libest included)", kt)
	}
	return fmt.Sprintf("%s keys as PKCS#8 (not to libest, which takes only RSA keys from serverkeygen: its requests are refused with 406 before the token or a pooled key is used)", kt)
}

// checkDeliverable refuses, before the request spends a rate unit, a
// token or a pooled key, a serverkeygen request whose client cannot
// accept the key the label would deliver. nil means go on.
func checkDeliverable(r *http.Request, l *label) error {
	if l.pool == nil || !isLibest(r) || libestTakes(l.pool.kt) {
		return nil
	}
	return ca.Wrap(ca.ErrPolicy, errNotAcceptable, fmt.Sprintf("EST label %s generates %s keys, and libest accepts only RSA keys from serverkeygen; "+
		"use a label whose serverkeygen key_type is RSA-2048 or larger, or generate the key on the device and use simpleenroll "+
		"(no credential was used)", l.name, l.pool.kt))
}
