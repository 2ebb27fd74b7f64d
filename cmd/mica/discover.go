package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/discover"
)

// runDiscoverScan: mica discover scan --targets A,B --ports 443,8443.
// The scan is stored as a discovery job (audited), run here, and its
// per-target failures are printed and kept on the job; they do not make
// the command fail.
func runDiscoverScan(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "discover scan", "--targets HOST[:PORT]|IP|CIDR,… [--ports 443,8443]")
	targets := c.fs.String("targets", "", "comma-separated `TARGETS`: host, host:port, IP, IP:port or CIDR")
	ports := c.fs.String("ports", "443", "comma-separated `PORTS` for targets without one")
	conc := c.fs.Int("concurrency", 16, "parallel handshakes `N`")
	timeout := c.fs.Duration("timeout", 5*time.Second, "per-connection `TIMEOUT`")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("discover scan takes no arguments, got %q (use --targets)", pos)
	}
	spec := inventory.JobSpec{Targets: splitList(*targets)}
	if len(spec.Targets) == 0 {
		return usageErrorf("--targets is required")
	}
	for _, p := range splitList(*ports) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return usageErrorf("--ports: %q is not a port", p)
		}
		spec.Ports = append(spec.Ports, n)
	}
	if *conc < 1 || *conc > 256 || *timeout <= 0 {
		return usageErrorf("--concurrency must be 1–256 and --timeout positive")
	}
	return runDiscoveryJob(ctx, e, c, "scan", spec, func(r *discover.Runner) {
		r.Concurrency, r.Timeout = *conc, *timeout
	})
}

// runDiscoverFiles: mica discover files PATH… imports PEM, DER and PKCS#12
// certificates (PKCS#12 password from --password-file / --password-env or
// the discovery section of the configuration, never argv).
func runDiscoverFiles(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "discover files", "PATH… [--password-file F | --password-env VAR]")
	pwFile := c.fs.String("password-file", "", "`FILE` holding the PKCS#12 password")
	pwEnv := c.fs.String("password-env", "", "environment `VAR` holding the PKCS#12 password")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("discover files needs at least one PATH")
	}
	return runDiscoveryJob(ctx, e, c, "files", inventory.JobSpec{Paths: pos}, func(r *discover.Runner) {
		if *pwFile != "" || *pwEnv != "" {
			r.Password = pkcs12Password(e, *pwFile, *pwEnv)
		}
	})
}

func runDiscoveryJob(ctx context.Context, e *env, c *common, kind string, spec inventory.JobSpec, tune func(*discover.Runner)) error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	r, err := discoveryRunner(e, cfg)
	if err != nil {
		return err
	}
	tune(r)
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := r.Check(kind, spec); err != nil {
		// Refused before it runs, and audited like the API's refusals.
		details, _ := json.Marshal(map[string]string{"kind": kind, "why": err.Error()})
		if _, aerr := st.AppendEvent(ctx, inventory.Event{Actor: actor(), Action: "discovery.create", Protocol: "cli", Source: source(),
			Object: "discovery:new", Outcome: "denied", Details: details}); aerr != nil {
			fmt.Fprintf(e.stderr, "warning: cannot audit the refused discovery job: %v\n", aerr)
		}
		return &cliError{code: exitRefused, msg: err.Error()}
	}
	r.Store = st
	job, err := st.CreateDiscoveryJob(ctx, kind, spec, inventory.Event{Actor: actor(), Protocol: "cli", Source: source(), Outcome: "ok"})
	if err != nil {
		return &cliError{code: exitUnavailable, msg: "cannot store the discovery job", err: err}
	}
	if job, err = st.StartDiscoveryJob(ctx, job.ID, r.Holder); err != nil {
		return &cliError{code: exitUnavailable, msg: "cannot start the discovery job", err: err}
	}
	sink, err := r.Run(ctx, job)
	if err != nil {
		return &cliError{code: exitUnavailable, msg: "cannot record the discovery job's outcome", err: err}
	}
	for _, je := range sink.Errors {
		fmt.Fprintf(e.stdout, "error\t%s\t%s\n", je.Target, je.Error)
	}
	fmt.Fprintf(e.stdout, "discovery job %d: %d certificates (%d external), %d errors\n",
		job.ID, sink.Certificates, sink.External, len(sink.Errors)+sink.Dropped)
	return nil
}

// discoveryRunner builds a Runner from the configuration (allow-list,
// PKCS#12 password); Store is set by the caller.
func discoveryRunner(e *env, cfg *config.Config) (*discover.Runner, error) {
	allow, err := discover.ParseAllowList(cfg.Discovery.Allow())
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	// File jobs read only under discovery.file_roots, never the data
	// directory nor the key backend's secret files; no roots: file
	// discovery is off.
	fence, err := discover.NewFence(cfg.Discovery.FileRoots, cfg.DataDir, cfg.Keys.SecretFile, cfg.Keys.RootSecretFile,
		cfg.Discovery.PKCS12PasswordFile)
	if err != nil {
		return nil, usageErrorf("discovery.file_roots: %v", err)
	}
	host, _ := os.Hostname()
	r := &discover.Runner{Allow: allow, Files: fence, Holder: fmt.Sprintf("%s/%d", host, os.Getpid()), Host: host}
	if cfg.Discovery.PKCS12PasswordFile != "" || cfg.Discovery.PKCS12PasswordEnv != "" {
		r.Password = pkcs12Password(e, cfg.Discovery.PKCS12PasswordFile, cfg.Discovery.PKCS12PasswordEnv)
	}
	return r, nil
}

// pkcs12Password reads the password once, lazily, from a file or the
// environment; a file that cannot be read means "no password".
func pkcs12Password(e *env, file, envVar string) func(string) string {
	var pw string
	var loaded bool
	return func(string) string {
		if !loaded {
			loaded = true
			if envVar != "" {
				pw = e.getenv(envVar)
			} else if f, err := os.Open(file); err == nil {
				b, _ := io.ReadAll(io.LimitReader(f, 4096))
				f.Close()
				pw = strings.TrimRight(string(b), "\r\n")
			}
		}
		return pw
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
