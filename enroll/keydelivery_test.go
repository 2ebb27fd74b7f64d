package enroll_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory"
)

// libestUA is what libest 3.2.0p sends on every request (its
// PACKAGE_STRING); applications built on libest cannot change it.
const libestUA = "libest 3.2.0p"

// libestMinKeyText is libest's EST_MIN_CLIENT_PKEY_LEN: the shortest
// base64 key part it accepts from serverkeygen.
const libestMinKeyText = 256

// testServerKeygenLibest: libest takes only RSA keys from serverkeygen
// and refuses a short EC key only after the answer arrived. MICA refuses
// libest on an EC label before anything is spent: the token still
// enrolls afterwards and the pool holds as many keys as before; on an RSA
// label libest is served a key part long enough for it.
func testServerKeygenLibest(t *testing.T, b *base) {
	ctx := context.Background()
	e := newEnv(t, b, func(c *enroll.Config) {
		c.Labels["kg-ec"] = enroll.Label{Profile: "device", Tokens: true, ServerKeyGen: &enroll.PoolConfig{KeyType: "EC-P256", Size: 5}}
		c.Labels["kg-rsa"] = enroll.Label{Profile: "device", Tokens: true, ServerKeyGen: &enroll.PoolConfig{KeyType: "RSA-2048"}}
	})
	poolLevel := func() int {
		t.Helper()
		n, err := b.store.CountESTPoolKeys(ctx, "kg-ec", "EC-P256")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); poolLevel() < 5; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pool holds %d keys after 30 s, want 5", poolLevel())
		}
	}

	der, _ := csr(t, "libest-dev")
	u, p := e.token("kg-ec")
	r := post(t, e.client(nil), e.url("/kg-ec/serverkeygen"), u, p, b64(der), map[string]string{"User-Agent": libestUA})
	if r.code != 406 || !strings.Contains(r.body, "RSA-2048") || !strings.Contains(r.body, "libest") || !strings.Contains(r.body, "simpleenroll") {
		t.Fatalf("libest serverkeygen on an EC-P256 label = %d %q, want 406 naming RSA-2048 and simpleenroll", r.code, r.body)
	}
	if got := poolLevel(); got != 5 {
		t.Errorf("pool holds %d keys after the refusal, want 5 (a key was taken)", got)
	}
	if evs, _ := b.store.Events(ctx, inventory.EventFilter{Action: "est.serverkeygen", Actor: "est-token:" + u}); len(evs) != 0 {
		t.Errorf("%d est.serverkeygen events after the refusal, want 0", len(evs))
	}
	// The same token, from a client that takes EC keys, still works.
	r = post(t, e.client(nil), e.url("/kg-ec/serverkeygen"), u, p, b64(der), map[string]string{"User-Agent": "curl/8.5.0"})
	if r.code != 200 {
		t.Fatalf("token after the libest refusal = %d %s, want 200 (the refusal spent it)", r.code, r.body)
	}
	if got := poolLevel(); got != 4 {
		t.Errorf("pool holds %d keys after one serverkeygen, want 4", got)
	}

	// An RSA label serves libest, with a key part above libest's minimum.
	u, p = e.token("kg-rsa")
	r = post(t, e.client(nil), e.url("/kg-rsa/serverkeygen"), u, p, b64(der), map[string]string{"User-Agent": libestUA})
	if r.code != 200 {
		t.Fatalf("libest serverkeygen on an RSA-2048 label = %d %s", r.code, r.body)
	}
	keyText := keyPartText(t, r.hdr.Get("Content-Type"), r.body)
	if n := len(strings.TrimSpace(keyText)); n < libestMinKeyText {
		t.Errorf("RSA-2048 key part is %d characters, libest needs %d", n, libestMinKeyText)
	}
	keyDER, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(keyText, "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	if k, err := x509.ParsePKCS8PrivateKey(keyDER); err != nil {
		t.Fatal(err)
	} else if _, ok := k.(*rsa.PrivateKey); !ok {
		t.Fatalf("key is %T, want RSA", k)
	}
}

// keyPartText returns the raw (base64) text of the application/pkcs8
// part of a serverkeygen answer, as libest measures it.
func keyPartText(t *testing.T, ct, body string) string {
	t.Helper()
	_, params, err := mime.ParseMediaType(ct)
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(strings.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no application/pkcs8 part: %v", err)
		}
		raw, _ := io.ReadAll(part)
		if part.Header.Get("Content-Type") == "application/pkcs8" {
			return string(raw)
		}
	}
}

// TestPoolDelivers: what a label's serverkeygen says it delivers, in the
// start-up log, names the key type and whether libest can take it.
func TestPoolDelivers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kt         string
		want, deny string
	}{
		{"RSA-2048", "RSA-2048 keys", "not to libest"},
		{"RSA-4096", "libest included", "not to libest"},
		{"EC-P256", "not to libest", "libest included"},
		{"EC-P384", "not to libest", "libest included"},
		{"Ed25519", "not to libest", "libest included"},
	} {
		got := (&enroll.PoolConfig{KeyType: tc.kt}).Delivers()
		if !strings.Contains(got, tc.want) || strings.Contains(got, tc.deny) {
			t.Errorf("%s delivers %q, want %q and not %q", tc.kt, got, tc.want, tc.deny)
		}
	}
	var none *enroll.PoolConfig
	if got := none.Delivers(); got != "" {
		t.Errorf("no serverkeygen delivers %q", got)
	}
}
