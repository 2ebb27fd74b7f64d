package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestUserAdd: 'mica user add' is the scripted form of 'user create': the
// four roles are accepted, an unknown one and a duplicate name are refused.
func TestUserAdd(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t)
	pw := writeSecret(t, t.TempDir(), "pw", "correct horse battery staple")
	for _, role := range []string{"viewer", "operator", "admin", "auditor"} {
		r := c.must(c.data("user", "add", "u-"+role, "--role", role, "--password-file", pw)...)
		if !strings.Contains(r.stdout, "user u-"+role+" created with role "+role) {
			t.Errorf("user add %s: %q", role, r.stdout)
		}
	}
	wantExit(t, c.run(c.data("user", "add", "x", "--role", "root", "--password-file", pw)...), 2, "role")
	wantExit(t, c.run(c.data("user", "add", "u-viewer", "--role", "viewer", "--password-file", pw)...), 2)
	wantExit(t, c.run(c.data("user", "add", "y", "--role", "viewer", "--password-file", filepath.Join(t.TempDir(), "missing"))...), 2)
}
