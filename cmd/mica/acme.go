package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/inventory"
)

// acmeFlags are the per-run ACME validation overrides of serve and dev,
// for labs and tests that answer challenges on non-standard ports or
// publish TXT records in a local DNS server.
type acmeFlags struct {
	http01Port, tlsALPN01Port int
	dnsResolver               string
}

func addACMEFlags(fs *flag.FlagSet) *acmeFlags {
	f := &acmeFlags{}
	fs.IntVar(&f.http01Port, "http01-port", 0, "`PORT` ACME http-01 validation connects to (default 80)")
	fs.IntVar(&f.tlsALPN01Port, "tlsalpn01-port", 0, "`PORT` ACME tls-alpn-01 validation connects to (default 443)")
	fs.StringVar(&f.dnsResolver, "dns-resolver", "", "DNS server `HOST:PORT` ACME validation resolves names and TXT records with")
	return f
}

// apply writes the flags that were given into cfg for this run only.
func (f *acmeFlags) apply(cfg *config.Config) error {
	for name, p := range map[string]int{"--http01-port": f.http01Port, "--tlsalpn01-port": f.tlsALPN01Port} {
		if p < 0 || p > 65535 {
			return usageErrorf("%s %d is not a port", name, p)
		}
	}
	if f.http01Port != 0 {
		cfg.ACME.Validation.HTTP01Port = f.http01Port
	}
	if f.tlsALPN01Port != 0 {
		cfg.ACME.Validation.TLSALPN01Port = f.tlsALPN01Port
	}
	if f.dnsResolver != "" {
		if _, _, err := net.SplitHostPort(f.dnsResolver); err != nil {
			return usageErrorf("--dns-resolver %q is not HOST:PORT", f.dnsResolver)
		}
		cfg.ACME.Validation.DNSResolver = f.dnsResolver
	}
	return nil
}

// acmeFrontEnd builds the ACME server from the engine. The EAB sealing
// secret is the key backend's secret, so every replica that can sign can
// also check EAB bindings, and a database dump alone cannot.
func acmeFrontEnd(ctx context.Context, g *engine) (*acme.Server, error) {
	cfg := g.cfg
	secret, err := cfg.Keys.Secret()
	if err != nil {
		return nil, &cliError{code: exitConfig, msg: "keys.secret_file/secret_env: " + err.Error()}
	}
	// EAB keys are sealed under an HSM-derived key; keys a previous
	// version sealed under the backend secret are re-wrapped now (every
	// replica may try: the store swaps each key once, audited).
	if g.eabSealer, err = acme.NewEABSealer(ctx, g.keys, secret.Bytes()); err != nil {
		return nil, &cliError{code: exitUnavailable, msg: "cannot derive the EAB sealing key", err: err}
	}
	if n, err := g.eabSealer.MigrateEABKeys(ctx, g.store, inventory.Event{Actor: "system", Protocol: "system", Source: source()}); err != nil {
		g.log.Error("re-wrapping EAB keys under the HSM-derived key", "rewrapped", n, "err", err)
	} else if n > 0 {
		g.log.Info("re-wrapped EAB keys under the HSM-derived key", "rewrapped", n)
	}
	if len(cfg.ACME.Validation.AllowNetworks) == 0 {
		// A private CA's clients usually live in 10/8 and friends: say
		// once why their validations will be refused, and what to set.
		g.log.Info("acme: validation reaches public addresses only; list internal networks in acme.validation.allow_networks")
	}
	s, err := acme.New(ctx, acme.Options{
		CA:         g.ca,
		Store:      g.store,
		Profiles:   cfg.ACME.Profiles,
		BaseURL:    cfg.ACME.BaseURL,
		Validation: cfg.ACME.Validation,
		Limits:     cfg.ACME.EffectiveLimits(),
		EABSealer:  g.eabSealer,
		Logger:     g.log,
		Denials:    g.denials,

		TermsOfService: cfg.ACME.TermsOfService,
		Registry:       registerer(g),
	})
	if err != nil {
		return nil, &cliError{code: exitConfig, msg: "acme: " + err.Error(), err: err}
	}
	return s, nil
}

// registerer is the engine's metrics registry, or nil (metrics kept but
// not exported) when the command serves none.
func registerer(g *engine) prometheus.Registerer {
	if g.registry == nil {
		return nil
	}
	return g.registry
}

// runACMEEABCreate creates an external account binding key for one ACME
// profile. The HMAC key is printed once, on the last line, and stored
// only sealed.
func runACMEEABCreate(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "acme eab create", "--profile NAME [flags]")
	profile := c.fs.String("profile", "", "ACME profile (directory name) the key may create an account in")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("acme eab create takes no arguments, got %q", pos)
	}
	if *profile == "" {
		return usageErrorf("--profile is required")
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if err := acme.CheckEABProfile(cfg.ACME.Profiles, *profile); err != nil {
		return usageErrorf("%s", strings.TrimPrefix(err.Error(), inventory.ErrInvalid.Error()+": "))
	}
	secret, err := checkedSecret(e, cfg.Keys.Secret, "keys.secret_file/secret_env")
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := openKeys(ctx, e, cfg)
	if err != nil {
		return err
	}
	defer keys.Close()
	sealer, err := acme.NewEABSealer(ctx, keys, secret.Bytes())
	if err != nil {
		return &cliError{code: exitUnavailable, msg: "cannot derive the EAB sealing key", err: err}
	}
	admin := &acme.EABAdmin{Store: st, Sealer: sealer, Profiles: cfg.ACME.Profiles}
	kid, key, err := admin.CreateEABKey(ctx, *profile, inventory.Event{Actor: actor(), Protocol: "cli", Source: source(), Outcome: "ok"})
	if err != nil {
		return &cliError{code: exitUnavailable, msg: "cannot create the EAB key", err: err}
	}
	fmt.Fprintf(e.stdout, "EAB key for ACME profile %s. The HMAC key is shown only now; it is stored sealed.\n", *profile)
	fmt.Fprintf(e.stdout, "kid: %s\n", kid)
	fmt.Fprintf(e.stdout, "HMAC key (base64url, last line):\n%s\n", key)
	return nil
}
