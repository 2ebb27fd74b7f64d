package web

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// TestOutageStatus: an outage reaching a handler past authentication (a
// store call failing with a lost connection or a closed database) is 503
// with Retry-After and a message free of the driver's text; a refusal or
// a bug keeps its own status.
func TestOutageStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"lost connection", fmt.Errorf("inventory: search: %w", driver.ErrBadConn), http.StatusServiceUnavailable},
		{"database closed", errors.New("inventory: list users: sql: database is closed"), http.StatusServiceUnavailable},
		{"ca unavailable", ca.Wrap(ca.ErrUnavailable, driver.ErrBadConn, "recording the revocation failed"), http.StatusServiceUnavailable},
		{"refusal", fmt.Errorf("%w: no such user", inventory.ErrNotFound), http.StatusNotFound},
		{"bug", errors.New("nil map"), http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(nil, nil, nil)
			w := httptest.NewRecorder()
			s.fail(w, httptest.NewRequest("GET", "/api/v1/users", nil), tc.err)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d", w.Code, tc.want)
			}
			if got := w.Header().Get("Retry-After"); (tc.want == http.StatusServiceUnavailable) != (got != "") {
				t.Errorf("Retry-After %q with status %d", got, w.Code)
			}
			if b := w.Body.String(); strings.Contains(b, "sql:") || strings.Contains(b, "bad connection") || !strings.Contains(b, `"error"`) {
				t.Errorf("body %q: want a JSON error without the driver's text", b)
			}
		})
	}
}
