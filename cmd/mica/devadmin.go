package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/web"
)

// devAdminFile holds the generated password of the dev CA's web UI admin.
const devAdminFile = "ui-admin-password"

// ensureDevAdmin gives a dev CA a web UI user "admin" on first run, with
// a random password stored 0600 in the data directory (never printed),
// and returns that file's path.
func ensureDevAdmin(ctx context.Context, cfg *config.Config) (string, error) {
	path := filepath.Join(cfg.DataDir, devAdminFile)
	st, err := openStore(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer st.Close()
	if _, err := st.User(ctx, "admin"); err == nil {
		return path, nil
	} else if !errors.Is(err, inventory.ErrNotFound) {
		return "", err
	}
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(b[:])
	hash, err := web.HashPassword(pw)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := st.CreateUser(ctx, inventory.User{Name: "admin", Role: inventory.RoleAdmin, PasswordHash: hash},
		inventory.Event{Actor: actor(), Protocol: "cli", Source: source(), Outcome: "ok"}); err != nil {
		return "", err
	}
	return path, nil
}
