package inventory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// eachStore runs fn as a parallel subtest against every available backend
// (SQLite always, PostgreSQL when MICA_TEST_POSTGRES_DSN is set), each with
// a fresh database.
func eachStore(t *testing.T, fn func(t *testing.T, s *inventory.Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, inventorytest.SQLite(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, inventorytest.Postgres(t))
	})
}

// t0 is a fixed reference instant for validity periods; tests that care
// about expiry pass an explicit CertFilter.Now relative to it.
var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

// newCert returns a reservable certificate valid for a year around t0.
func newCert(t testing.TB, issuer string) inventory.Certificate {
	t.Helper()
	return inventory.Certificate{
		IssuerID:   issuer,
		Serial:     inventorytest.RandomSerial(t),
		Subject:    "CN=host.example.test",
		CommonName: "host.example.test",
		SANs:       []string{"dns:host.example.test"},
		NotBefore:  t0.Add(-24 * time.Hour),
		NotAfter:   t0.Add(365 * 24 * time.Hour),
		KeyType:    "EC-P256",
		Profile:    "server",
		Requester:  "alice",
		Protocol:   "cli",
	}
}

// reserve stores c as requested and returns the stored value.
func reserve(t testing.TB, s *inventory.Store, c inventory.Certificate) *inventory.Certificate {
	t.Helper()
	if err := s.ReserveCertificate(context.Background(), &c); err != nil {
		t.Fatalf("reserve %s: %v", c.Serial, err)
	}
	return &c
}

// wantErr fails unless err wraps target (nil target: err must be nil).
func wantErr(t testing.TB, err, target error) {
	t.Helper()
	switch {
	case target == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case target != nil && !errors.Is(err, target):
		t.Fatalf("error = %v, want %v", err, target)
	}
}

// rawExec runs SQL written with '?' placeholders directly on the store's
// database, bypassing the API (for tampering and inspection).
func rawExec(t testing.TB, s *inventory.Store, query string, args ...any) error {
	t.Helper()
	db := s.RawDB()
	_, err := db.ExecContext(context.Background(), db.Rebind(query), args...)
	return err
}

// inventoryStore returns a fresh SQLite store, for backend-neutral tests.
func inventoryStore(t *testing.T) *inventory.Store {
	t.Helper()
	return inventorytest.SQLite(t)
}
