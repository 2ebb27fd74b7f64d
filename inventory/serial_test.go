package inventory_test

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/mica-pki/mica/inventory"
)

func TestNormalizeSerial(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "abcdef", want: "abcdef"},
		{in: "ABCDEF", want: "abcdef"},
		{in: "00:AB:cd:EF", want: "abcdef"},
		{in: "00 ab cd", want: "abcd"},
		{in: "0xABCD", want: "abcd"},
		{in: "0X00ab", want: "ab"},
		{in: "  7f:01 \t", want: "7f01"},
		{in: "0", want: "0"},
		{in: "00:00", want: "0"},
		{in: "0x0", want: "0"},
		{in: "1", want: "1"},
		{in: "0123456789abcdefABCDEF", want: "123456789abcdefabcdef"},
		{in: strings.Repeat("f", 128), want: strings.Repeat("f", 128)},
		{in: "00" + strings.Repeat("f", 128), want: strings.Repeat("f", 128)},
		{in: strings.Repeat("f", 129), wantErr: true},
		{in: "", wantErr: true},
		{in: "   ", wantErr: true},
		{in: "::", wantErr: true},
		{in: "0x", wantErr: true},
		{in: "xyz", wantErr: true},
		{in: "12g4", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "ab-cd", wantErr: true},
		{in: "abc\x00", wantErr: true},
		{in: "ａｂ", wantErr: true}, // full-width letters are not hex
	}
	for _, tt := range tests {
		got, err := inventory.NormalizeSerial(tt.in)
		if tt.wantErr {
			if err == nil || !errors.Is(err, inventory.ErrInvalid) {
				t.Errorf("NormalizeSerial(%q) = %q, %v; want ErrInvalid", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeSerial(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzNormalizeSerial(f *testing.F) {
	for _, s := range []string{"00:AB", "0x1", "zz", "", "0A1B", "ab cd", "0X00", strings.Repeat("F", 130)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := inventory.NormalizeSerial(s)
		if err != nil {
			return
		}
		// Canonical output is a fixed point and has no leading zero.
		again, err := inventory.NormalizeSerial(n)
		if err != nil || again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, n, again, err)
		}
		if n != "0" && strings.HasPrefix(n, "0") {
			t.Fatalf("leading zero in %q", n)
		}
		if strings.ToLower(n) != n {
			t.Fatalf("not lower case: %q", n)
		}
		// The printed form is openssl's (upper case, whole octets) and
		// reads back as the same serial: display never breaks lookup.
		p := inventory.FormatSerial(s)
		if back, err := inventory.NormalizeSerial(p); err != nil || back != n || len(p)%2 != 0 || strings.ToUpper(p) != p {
			t.Fatalf("FormatSerial(%q) = %q, which reads back as %q, %v; want %q", s, p, back, err, n)
		}
		obj := "cert:issuing-1/" + s
		if k := inventory.ObjectKey(inventory.FormatObject(obj)); k != "cert:issuing-1/"+n {
			t.Fatalf("ObjectKey(FormatObject(%q)) = %q", obj, k)
		}
	})
}

func TestFormatSerial(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a1b", "0A1B"}, {"0a1b", "0A1B"}, {"0A:1B", "0A1B"}, {"0x00a1b", "0A1B"}, {"ff", "FF"}, {"0", "00"},
		{"8000", "8000"}, {"not hex", "not hex"},
	} {
		if got := inventory.FormatSerial(tc.in); got != tc.want {
			t.Errorf("FormatSerial(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   *big.Int
		want string
	}{{big.NewInt(0xa1b), "0A1B"}, {big.NewInt(-0x80), "-80"}, {big.NewInt(0), "00"}, {nil, ""}} {
		if got := inventory.FormatSerialNumber(tc.in); got != tc.want {
			t.Errorf("FormatSerialNumber(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, show, key string }{
		{"cert:iss/a1b", "cert:iss/0A1B", "cert:iss/a1b"},
		{"cert:iss/0A:1B", "cert:iss/0A1B", "cert:iss/a1b"},
		{"cert:a/b/c", "cert:a/b/0C", "cert:a/b/c"},
		{"cert:bulk", "cert:bulk", "cert:bulk"},
		{"issuer:iss", "issuer:iss", "issuer:iss"},
		{"cert:iss/zz", "cert:iss/zz", "cert:iss/zz"},
	} {
		if got := inventory.FormatObject(tc.in); got != tc.show {
			t.Errorf("FormatObject(%q) = %q, want %q", tc.in, got, tc.show)
		}
		if got := inventory.ObjectKey(tc.in); got != tc.key {
			t.Errorf("ObjectKey(%q) = %q, want %q", tc.in, got, tc.key)
		}
	}
}
