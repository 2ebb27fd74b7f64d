package enroll

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// TestAESKeyWrap checks the RFC 3394 section 4.6 vector (256-bit key
// data under a 256-bit KEK).
func TestAESKeyWrap(t *testing.T) {
	kek, _ := hex.DecodeString("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	key, _ := hex.DecodeString("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
	want, _ := hex.DecodeString("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
	got, err := aesKeyWrap(kek, key)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("aesKeyWrap = %X, %v; want %X", got, err, want)
	}
}
