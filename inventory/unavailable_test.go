package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestIsUnavailable: outages (closed database, refused connection, server
// shutting down) are told apart from refusals and bugs, which must not
// become "try again later".
func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	st := inventorytest.SQLite(t)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, closedErr := st.ACMEOrder(context.Background(), "x")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"closed store", closedErr, true},
		{"refused", fmt.Errorf("inventory: x: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true},
		{"admin shutdown", fmt.Errorf("inventory: x: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"not found", fmt.Errorf("%w: order", inventory.ErrNotFound), false},
		{"conflict", fmt.Errorf("%w: moved on", inventory.ErrConflict), false},
		{"bug", errors.New("json: cannot unmarshal"), false},
	} {
		if got := inventory.IsUnavailable(tc.err); got != tc.want {
			t.Errorf("%s: IsUnavailable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
