package inventory_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

func TestUserAdministration(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		ev := inventory.Event{Actor: "user:root"}
		for _, u := range []inventory.User{{Name: "root", Role: "admin"}, {Name: "ada", Role: "operator"}} {
			u.PasswordHash = "$2a$04$fake"
			wantErr(t, s.CreateUser(ctx, u, ev), nil)
		}
		sessions := func(name string) string {
			tok, err := s.CreateSession(ctx, name, 3600e9)
			wantErr(t, err, nil)
			return tok
		}
		alive := func(tok string) bool { _, err := s.SessionUser(ctx, tok); return err == nil }

		// The only admin can be neither demoted, disabled nor deleted.
		wantErr(t, s.SetUserRole(ctx, "root", "viewer", ev), inventory.ErrLastAdmin)
		wantErr(t, s.SetUserDisabled(ctx, "root", true, ev), inventory.ErrLastAdmin)
		wantErr(t, s.DeleteUser(ctx, "root", ev), inventory.ErrConflict)
		wantErr(t, s.SetUserRole(ctx, "root", "superuser", ev), inventory.ErrInvalid)
		wantErr(t, s.SetUserRole(ctx, "nobody", "viewer", ev), inventory.ErrNotFound)

		// Every change ends the user's sessions at once.
		tok := sessions("ada")
		wantErr(t, s.SetUserRole(ctx, "ada", "admin", ev), nil)
		if alive(tok) {
			t.Error("session survived a role change")
		}
		wantErr(t, s.SetUserRole(ctx, "root", "viewer", ev), nil) // ada is admin now
		tok = sessions("root")
		wantErr(t, s.SetUserPassword(ctx, "root", "$2a$04$other", ev), nil)
		if alive(tok) {
			t.Error("session survived a password reset")
		}
		tok = sessions("root")
		wantErr(t, s.SetUserDisabled(ctx, "root", true, ev), nil)
		if alive(tok) {
			t.Error("session survived disabling")
		}
		if u, _ := s.User(ctx, "root"); u.DisabledAt == nil {
			t.Error("disabled user has no disabled_at")
		}
		if _, err := s.SessionUser(ctx, sessions("root")); err == nil {
			t.Error("disabled user got a live session")
		}
		wantErr(t, s.SetUserDisabled(ctx, "ada", true, ev), inventory.ErrLastAdmin)
		wantErr(t, s.SetUserDisabled(ctx, "root", false, ev), nil)
		tok = sessions("root")
		wantErr(t, s.DeleteUser(ctx, "root", ev), nil)
		if alive(tok) {
			t.Error("session survived deletion")
		}
		wantErr(t, s.DeleteUser(ctx, "ada", ev), inventory.ErrLastAdmin)
		for action, want := range map[string]int{"user.role": 2, "user.password": 1, "user.disable": 1, "user.enable": 1, "user.delete": 1} {
			if evs, _ := s.Events(ctx, inventory.EventFilter{Action: action}); len(evs) != want {
				t.Errorf("%s events = %d, want %d", action, len(evs), want)
			}
		}
	})
}

func TestChangeLabels(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "ca")
		c := reserve(t, s, newCert(t, "ca"))
		str := func(v string) *string { return &v }
		tags := []string{"PCI", "web"}
		l, changed, err := s.ChangeLabels(ctx, c.IssuerID, c.Serial, inventory.LabelChange{Owner: str("alice"), Tags: &tags}, inventory.Event{Actor: "u"})
		wantErr(t, err, nil)
		if !changed || l.Owner != "alice" || len(l.Tags) != 2 || l.Tags[0] != "pci" {
			t.Fatalf("labels = %+v changed %v", l, changed)
		}
		l, _, err = s.ChangeLabels(ctx, c.IssuerID, c.Serial, inventory.LabelChange{Team: str("edge"), AddTags: []string{"prod"}, RemoveTags: []string{"web"}}, inventory.Event{Actor: "u"})
		wantErr(t, err, nil)
		if l.Owner != "alice" || l.Team != "edge" || len(l.Tags) != 2 || l.Tags[1] != "prod" {
			t.Errorf("second change = %+v", l)
		}
		if _, changed, _ := s.ChangeLabels(ctx, c.IssuerID, c.Serial, inventory.LabelChange{Team: str("edge")}, inventory.Event{Actor: "u"}); changed {
			t.Error("no-op change reported as changed")
		}
		evs, _ := s.Events(ctx, inventory.EventFilter{Action: "cert.label"})
		if len(evs) != 2 || !strings.Contains(string(evs[0].Details), `"old":{"owner":"alice","team":""`) {
			t.Errorf("label events = %d, newest %s", len(evs), evs[0].Details)
		}
		for _, bad := range []inventory.LabelChange{{Owner: str(string(make([]byte, 201)))}, {Team: str("a\nb")}, {AddTags: []string{"Not a tag!"}}} {
			_, _, err := s.ChangeLabels(ctx, c.IssuerID, c.Serial, bad, inventory.Event{Actor: "u"})
			wantErr(t, err, inventory.ErrInvalid)
		}
		_, _, err = s.ChangeLabels(ctx, c.IssuerID, "ab", inventory.LabelChange{Owner: str("x")}, inventory.Event{Actor: "u"})
		wantErr(t, err, inventory.ErrNotFound)
	})
}
