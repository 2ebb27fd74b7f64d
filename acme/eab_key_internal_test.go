package acme

import (
	"encoding/base64"
	"testing"
)

// An EAB key is pasted on command lines: it must never start with '-'.
// Among 2000 draws about 31 would start with '-' without the redraw.
func TestNewEABKeyNeverStartsWithDash(t *testing.T) {
	for i := 0; i < 2000; i++ {
		key, enc, err := newEABKey()
		if err != nil {
			t.Fatal(err)
		}
		if enc[0] == '-' {
			t.Fatalf("newEABKey() = %q, starts with '-'", enc)
		}
		if len(key) != 32 || base64.RawURLEncoding.EncodeToString(key) != enc {
			t.Fatalf("newEABKey() = %d bytes, %q: key and encoding disagree", len(key), enc)
		}
	}
}
