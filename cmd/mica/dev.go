package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/config"
)

// passphraseFile holds the generated softkms passphrase of a dev CA.
const passphraseFile = "passphrase"

func runDev(ctx context.Context, e *env, args []string) error {
	e.dev = true
	c := newFlags(e, "dev", "[flags]")
	listen := c.fs.String("listen", "", "HTTPS `HOST:PORT` (default 127.0.0.1:8443)")
	httpListen := c.fs.String("http-listen", "", "plain-HTTP `HOST:PORT` (default 127.0.0.1:8080)")
	acmeF := addACMEFlags(c.fs)
	var extraNames stringList
	c.fs.Var(&extraNames, "dev-name", "resolve `NAME` (or *.DOMAIN) to loopback for ACME validation, besides localhost, *.test and *.localhost (repeatable)")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("dev takes no arguments, got %q", pos)
	}
	path := c.configPath()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := devInit(ctx, e, c, path, *httpListen); err != nil {
			return err
		}
	} else if err != nil {
		return err
	} else {
		fmt.Fprintf(e.stderr, "mica dev: reusing the CA in %s\n", filepath.Dir(path))
	}

	cfg, err := c.load()
	if err != nil {
		return err
	}
	if err := overrideListeners(cfg, *listen, *httpListen); err != nil {
		return err
	}
	if err := acmeF.apply(cfg); err != nil {
		return err
	}
	names := devACME(cfg, extraNames)
	if len(cfg.EST.Labels) == 0 {
		cfg.EST = config.DevEST() // EST "default" label at /.well-known/est/
	}
	if len(cfg.ACME.Validation.AllowNetworks) == 0 {
		cfg.ACME.Validation.AllowNetworks = config.DevAllowNetworks() // loopback clients, containers, VMs
	}
	if strings.HasPrefix(cfg.Keys.Backend, "softkms:") {
		warnSoftware(e)
	}
	adminPW, err := ensureDevAdmin(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "mica dev: web UI user \"admin\"; its password is in %s (0600)\n", adminPW)
	log := c.logger(cfg, true)
	return serve(ctx, e, cfg, log, func(r *running) { printBanner(ctx, e, r, names) })
}

// devACME makes ACME work on one machine with no DNS set up: validation
// resolves development names to loopback through an in-process resolver
// (unless --dns-resolver or acme.validation.dns_resolver names a real
// one), connects to unprivileged challenge ports, and every directory
// accepts the name localhost.
func devACME(cfg *config.Config, extra []string) devNames {
	names := newDevNames(extra)
	v := &cfg.ACME.Validation
	if v.DNSResolver == "" {
		v.Resolver = loopbackResolver(names)
	}
	devValidationPorts(&v.HTTP01Port, &v.TLSALPN01Port)
	if len(cfg.ACME.Profiles) == 0 {
		cfg.ACME.Profiles = acme.DefaultProfiles()
	}
	for n, p := range cfg.ACME.Profiles {
		p.Localhost = true
		cfg.ACME.Profiles[n] = p
	}
	return names
}

// devInit initialises a development CA: software keys under a generated
// passphrase stored 0600 next to them. Convenient, and plainly not what a
// production CA should do, hence the warning.
//
// --listen applies to each run and is not written to mica.yaml. A fixed
// --http-listen port given at this first run is: the issuing CA's CRL and
// caIssuers URLs are written into its certificate now, so the CA must keep
// answering there. A random port (":0") is not kept; the default stays.
func devInit(ctx context.Context, e *env, c *common, path, httpListen string) error {
	dataDir, err := filepath.Abs(c.data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	pass := filepath.Join(dataDir, passphraseFile)
	if _, err := os.Stat(pass); errors.Is(err, fs.ErrNotExist) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		if err := config.WriteFileAtomic(pass, []byte(base64.RawURLEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
			return err
		}
	}
	cfg := config.Default(dataDir)
	cfg.Keys.SecretFile = pass
	cfg.CA.Organization = "MICA development CA"
	if _, port, err := net.SplitHostPort(httpListen); err == nil && port != "0" && port != "" {
		cfg.Server.HTTPListen = httpListen
	}
	fmt.Fprintf(e.stderr, "mica dev: initialising a development CA in %s\n", dataDir)
	_, err = initialise(ctx, e, cfg, path, c.logger(nil, false))
	return err
}

func warnSoftware(e *env) {
	fmt.Fprint(e.stderr, `
  ***********************************************************************
  * WARNING: development CA. The CA keys are SOFTWARE keys in files,    *
  * encrypted with a passphrase stored next to them. They are NOT       *
  * HSM-backed. Do not trust this CA for anything that matters.         *
  ***********************************************************************

`)
}
