package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// runConfigShow prints the effective configuration, defaults and derived
// URLs included, so an operator sees what mica will actually do. It can
// show no secret: Config never holds one (see package config).
func runConfigShow(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "config show", "[flags]")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("config show takes no arguments, got %q", pos)
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	out, err := cfg.Redacted()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "# effective configuration from %s (secrets are never part of it)\n", absPath(c.configPath()))
	_, err = e.stdout.Write(out)
	return err
}

// version is set at release builds with -ldflags "-X main.version=v1.2.3";
// otherwise the module version and VCS revision from the build info are used.
var version = ""

func runVersion(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "version", "")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("version takes no arguments")
	}
	v, rev, cgo := version, "", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "CGO_ENABLED":
				cgo = s.Value
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	pkcs11 := "available"
	if cgo == "0" {
		pkcs11 = "unavailable (built without cgo)"
	}
	fmt.Fprintf(e.stdout, "mica %s", v)
	if rev != "" {
		fmt.Fprintf(e.stdout, " (%.12s)", rev)
	}
	fmt.Fprintf(e.stdout, " %s %s/%s, pkcs11 %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, pkcs11)
	return nil
}
