package enroll

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"net/http"
	"testing"
)

// TestOutageStatus: a store failure outside ca (token, rate limit or
// pending-request lookups) during a database outage is 503 (fail adds
// Retry-After), not 500; an unrecognised error stays 500.
func TestOutageStatus(t *testing.T) {
	if got := status(fmt.Errorf("inventory: consume token: %w", driver.ErrBadConn)); got != http.StatusServiceUnavailable {
		t.Errorf("lost connection: %d, want 503", got)
	}
	if got := status(errors.New("inventory: sql: database is closed")); got != http.StatusServiceUnavailable {
		t.Errorf("closed database: %d, want 503", got)
	}
	if got := status(errors.New("nil map")); got != http.StatusInternalServerError {
		t.Errorf("bug: %d, want 500", got)
	}
}
