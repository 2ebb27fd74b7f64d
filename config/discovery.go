package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// Discovery configures certificate discovery (docs/inventory.md).
type Discovery struct {
	// AllowTargets lists the networks (CIDR or address) the TLS scanner
	// may connect to. Empty means loopback only: the scanner cannot be
	// aimed anywhere an operator did not list.
	AllowTargets []string `yaml:"allow_targets,omitempty"`
	// PKCS12PasswordFile / PKCS12PasswordEnv give the password `mica
	// discover files` and file jobs use for PKCS#12 files (never argv).
	PKCS12PasswordFile string `yaml:"pkcs12_password_file,omitempty"`
	PKCS12PasswordEnv  string `yaml:"pkcs12_password_env,omitempty"`
	// FileRoots lists the absolute directories (or files) file discovery
	// jobs may read under, from the API and `mica discover files`. Empty
	// (the default) disables file discovery: a server must not read files
	// for an API caller unless an operator said where. Never the data
	// directory, /proc, /sys, /dev or /run, whatever is listed here.
	FileRoots []string `yaml:"file_roots,omitempty"`
	// PollInterval is how often each `mica serve` replica looks for
	// queued discovery jobs; default 5s.
	PollInterval Duration `yaml:"poll_interval,omitempty"`
}

// DefaultAllowTargets is the scan allow-list when none is configured.
var DefaultAllowTargets = []string{"127.0.0.0/8", "::1/128"}

// Allow returns the configured allow-list, or the loopback default.
func (d Discovery) Allow() []string {
	if len(d.AllowTargets) == 0 {
		return DefaultAllowTargets
	}
	return d.AllowTargets
}

func (d Discovery) validate() []error {
	var errs []error
	for _, t := range d.AllowTargets {
		t = strings.TrimSpace(t)
		if _, err := netip.ParsePrefix(t); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(t); err == nil {
			continue
		}
		errs = append(errs, fmt.Errorf("discovery.allow_targets: %q is not a CIDR or an address", t))
	}
	for _, r := range d.FileRoots {
		if !filepath.IsAbs(r) {
			errs = append(errs, fmt.Errorf("discovery.file_roots: %q is not an absolute path", r))
		}
	}
	if d.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("discovery.poll_interval must not be negative"))
	}
	return errs
}
