package inventory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

func TestUsersSessionsAndStats(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			u := inventory.User{Name: "ada", Role: inventory.RoleOperator, PasswordHash: "$2a$10$fake"}
			if err := s.CreateUser(ctx, u, inventory.Event{Actor: "test"}); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateUser(ctx, u, inventory.Event{Actor: "test"}); !errors.Is(err, inventory.ErrDuplicate) {
				t.Errorf("second CreateUser = %v, want ErrDuplicate", err)
			}
			if err := s.CreateUser(ctx, inventory.User{Name: "bad name", Role: "viewer", PasswordHash: "x"}, inventory.Event{}); !errors.Is(err, inventory.ErrInvalid) {
				t.Errorf("CreateUser(bad name) = %v, want ErrInvalid", err)
			}
			for range inventory.MaxFailedLogins {
				if err := s.LoginResult(ctx, "ada", false); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.User(ctx, "ada")
			if err != nil || got.LockedUntil == nil || !got.LockedUntil.After(time.Now()) {
				t.Fatalf("User after failures = %+v, %v; want locked", got, err)
			}
			if err := s.LoginResult(ctx, "ada", true); err != nil {
				t.Fatal(err)
			}
			if got, _ = s.User(ctx, "ada"); got.LockedUntil != nil {
				t.Errorf("LockedUntil after success = %v, want nil", got.LockedUntil)
			}
			tok, err := s.CreateSession(ctx, "ada", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if su, err := s.SessionUser(ctx, tok); err != nil || su.Name != "ada" || su.Role != inventory.RoleOperator {
				t.Errorf("SessionUser = %+v, %v", su, err)
			}
			if _, err := s.SessionUser(ctx, tok+"x"); !errors.Is(err, inventory.ErrNotFound) {
				t.Errorf("SessionUser(wrong) = %v, want ErrNotFound", err)
			}
			short, _ := s.CreateSession(ctx, "ada", -time.Second)
			if _, err := s.SessionUser(ctx, short); !errors.Is(err, inventory.ErrNotFound) {
				t.Errorf("SessionUser(expired) = %v, want ErrNotFound", err)
			}
			if err := s.DeleteSession(ctx, tok); err != nil {
				t.Fatal(err)
			}
			if _, err := s.SessionUser(ctx, tok); !errors.Is(err, inventory.ErrNotFound) {
				t.Errorf("SessionUser after logout = %v, want ErrNotFound", err)
			}
			if us, err := s.Users(ctx); err != nil || len(us) != 1 {
				t.Errorf("Users = %v, %v", us, err)
			}
			inventorytest.Issuer(t, s, "ca")
			issueNamed(t, s, "today.test", time.Now().Add(24*time.Hour), nil)
			days, err := s.IssuedPerDay(ctx, time.Now().Add(-48*time.Hour))
			if err != nil || len(days) != 1 || days[0].Count != 1 || days[0].Day != time.Now().UTC().Format("2006-01-02") {
				t.Errorf("IssuedPerDay = %+v, %v", days, err)
			}
		})
	}
}
