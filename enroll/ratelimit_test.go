package enroll_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestESTCredentialRateLimit: one client certificate may make
// credential_rate_limit enrollment requests per window under a label,
// from any address; the next is 429 with Retry-After, while another
// device's certificate from the same address is still served.
func TestESTCredentialRateLimit(t *testing.T) {
	t.Parallel()
	b := newBase(t, inventorytest.SQLite(t))
	e := newEnv(t, b, func(c *enroll.Config) {
		c.RateLimit = 0 // the per-address limit stays out of the way
		c.CredentialRateLimit = 2
		c.CredentialRateWindow = time.Hour
	})
	looping, _ := e.enrollDeviceB(t, "dev-loop")
	other, _ := e.enrollDeviceB(t, "dev-calm")
	der, _ := csr(t, "dev-loop")
	for i := range 2 {
		if r := post(t, e.client(looping), e.url("/certonly/simpleenroll"), "", "", b64(der), nil); r.code != 200 {
			t.Fatalf("enrollment %d with a client certificate = %d %s", i+1, r.code, r.body)
		}
	}
	r := post(t, e.client(looping), e.url("/certonly/simpleenroll"), "", "", b64(der), nil)
	if r.code != 429 {
		t.Fatalf("third enrollment by one certificate = %d %s, want 429", r.code, r.body)
	}
	if ra, err := strconv.Atoi(r.hdr.Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
		t.Fatalf("Retry-After = %q, want 1..3600 seconds", r.hdr.Get("Retry-After"))
	}
	der2, _ := csr(t, "dev-calm")
	if r := post(t, e.client(other), e.url("/certonly/simpleenroll"), "", "", b64(der2), nil); r.code != 200 {
		t.Fatalf("another certificate from the same address = %d %s, want 200", r.code, r.body)
	}
}
