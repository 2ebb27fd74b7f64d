package inventory_test

import (
	"errors"
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
	for _, s := range []string{"00:AB", "0x1", "zz", ""} {
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
	})
}
