package acme

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// FuzzParseJWS feeds arbitrary bodies to the JWS front door: the
// flattened-JSON parse and protected-header decode, then the JWK and
// signature checks a request reaching verify would run. Nothing may
// panic, and whatever parseProtected lets through must meet its promises.
func FuzzParseJWS(f *testing.F) {
	b := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	jws := func(hdr, payload string) []byte {
		return []byte(`{"protected":"` + b(hdr) + `","payload":"` + b(payload) + `","signature":"` + b("sig") + `"}`)
	}
	f.Add(jws(`{"alg":"ES256","kid":"https://h/acme/default/acct/1","nonce":"n","url":"https://h/x"}`, `{}`))
	f.Add(jws(`{"alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},"nonce":"n","url":"u"}`, ``))
	f.Add(jws(`{"alg":"ES256","b64":false,"crit":["b64"],"kid":"k","nonce":"n","url":"u"}`, `{}`))
	f.Add(jws(`{"alg":"none","kid":"k"}`, ``))
	f.Add(jws(`{"alg":"HS256","kid":"k"}`, ``))
	f.Add([]byte(`{"protected":"","payload":"","signature":""}`))
	f.Add([]byte(`{"signatures":[{}],"payload":""}`))
	f.Add([]byte(`eyJhbGciOiJFUzI1NiJ9.e30.c2ln`))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	jwk := &jose.JSONWebKey{Key: key.Public()}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, p := parseProtected(raw)
		if (h == nil) == (p == nil) {
			t.Fatalf("parseProtected returned header %v and problem %v", h, p)
		}
		if p != nil {
			if p.Status != http.StatusBadRequest || !strings.HasPrefix(p.Type, errNS) {
				t.Fatalf("problem %+v is not a 400 ACME problem", p)
			}
			return
		}
		if !contains(algNames(), h.Alg) || len(h.Crit) > 0 || (h.B64 != nil && !*h.B64) {
			t.Fatalf("parseProtected accepted header %+v", h)
		}
		if len(h.JWK) > 0 {
			if k, p := parseJWK(h.JWK); (k == nil) == (p == nil) {
				t.Fatalf("parseJWK returned key %v and problem %v", k, p)
			}
		}
		// A fresh key signed none of the fuzzer's inputs.
		if payload, p := verifySignature(raw, jwk); p == nil {
			t.Fatalf("a JWS verified under an unrelated key: payload %q", payload)
		}
	})
}

// FuzzIdentifier checks newOrder's identifier rules: no panic, a refusal
// names its identifier, and an accepted identifier is canonical (checking
// it again changes nothing) and is what a certificate can carry.
func FuzzIdentifier(f *testing.F) {
	for _, s := range [][2]string{
		{"dns", "a.test"}, {"dns", "*.w.test"}, {"dns", "A.TEST."}, {"dns", "127.0.0.1"}, {"dns", "127.1"},
		{"dns", "xn--bcher-kva.test"}, {"dns", "xn--zz.test"}, {"dns", "bücher.test"}, {"dns", "a..test"},
		{"ip", "::ffff:10.0.0.1"}, {"ip", "fe80::1%eth0"}, {"email", "a@b.test"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		id, p := normalizeIdentifier(Identifier{Type: typ, Value: value}, false)
		if p != nil {
			if p.Identifier == nil || p.Identifier.Value != value || p.Status != http.StatusBadRequest {
				t.Fatalf("refusal %+v does not name %q with status 400", p, value)
			}
			return
		}
		again, p := normalizeIdentifier(id, false)
		if p != nil || again != id {
			t.Fatalf("%q normalized to %+v, which normalizes to %+v, %v", value, id, again, p)
		}
		switch id.Type {
		case "dns":
			name := strings.TrimPrefix(id.Value, "*.")
			if len(id.Value) > 253 || strings.HasSuffix(id.Value, ".") || strings.Contains(name, "*") || id.Value != strings.ToLower(id.Value) {
				t.Fatalf("accepted dns identifier %q", id.Value)
			}
			if _, err := netip.ParseAddr(name); err == nil {
				t.Fatalf("accepted an IP address %q as a dns identifier", id.Value)
			}
			for _, r := range id.Value {
				if r > 0x7e {
					t.Fatalf("accepted non-ASCII dns identifier %q", id.Value)
				}
			}
		case "ip":
			if a, err := netip.ParseAddr(id.Value); err != nil || a.String() != id.Value {
				t.Fatalf("accepted ip identifier %q", id.Value)
			}
		default:
			t.Fatalf("accepted identifier type %q", id.Type)
		}
	})
}
