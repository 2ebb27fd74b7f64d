package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/denials"
	"github.com/mica-pki/mica/metrics"
	"github.com/mica-pki/mica/server"
	"github.com/mica-pki/mica/status"
)

func runServe(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "serve", "[flags]")
	listen := c.fs.String("listen", "", "HTTPS `HOST:PORT` (overrides server.listen)")
	httpListen := c.fs.String("http-listen", "", "plain-HTTP `HOST:PORT` (overrides server.http_listen)")
	acmeF := addACMEFlags(c.fs)
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("serve takes no arguments, got %q", pos)
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
	log := c.logger(cfg, true)
	return serve(ctx, e, cfg, log, nil)
}

// overrideListeners applies --listen/--http-listen for this run only.
func overrideListeners(cfg *config.Config, listen, httpListen string) error {
	for flagName, v := range map[string]string{"--listen": listen, "--http-listen": httpListen} {
		if v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			return usageErrorf("%s %q is not HOST:PORT", flagName, v)
		}
	}
	if listen != "" {
		cfg.Server.Listen = listen
	}
	if httpListen != "" {
		cfg.Server.HTTPListen = httpListen
	}
	return nil
}

// running describes a started server, for `mica dev`'s banner.
type running struct {
	cfg       *config.Config
	engine    *engine
	httpsAddr net.Addr
	httpAddr  net.Addr
	urls      ca.URLs
	mounts    []server.Mounter
}

// serve runs the listeners until ctx ends (SIGINT/SIGTERM in main). The
// order matters: listeners are bound first, so that with port 0 the real
// addresses go into the CA's URLs and the server certificate; the CA is
// opened next; the server starts last. announce, if set, is called once
// everything is ready and before requests are served.
func serve(ctx context.Context, e *env, cfg *config.Config, log *slog.Logger, announce func(*running)) error {
	httpsLn, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return listenError(cfg.Server.Listen, "--listen", "server.listen", err)
	}
	defer httpsLn.Close()
	httpLn, err := net.Listen("tcp", cfg.Server.HTTPListen)
	if err != nil {
		return listenError(cfg.Server.HTTPListen, "--http-listen", "server.http_listen", err)
	}
	defer httpLn.Close()
	pinPort(&cfg.Server.Listen, httpsLn.Addr())
	pinPort(&cfg.Server.HTTPListen, httpLn.Addr())

	g, err := openEngine(ctx, e, cfg, log)
	if err != nil {
		return err
	}
	defer g.Close()

	names := append([]string{}, cfg.Server.Names...)
	if host, _, err := net.SplitHostPort(cfg.Server.Listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || (!ip.IsUnspecified() && !ip.IsLoopback()) {
			names = append(names, host)
		}
	}
	certs, err := newServerCert(ctx, g.ca, names, log)
	if err != nil {
		return err
	}
	go certs.renewLoop(ctx)

	// Client certificates (EST over mutual TLS, the agent) are verified
	// against our own hierarchy and the EST manufacturer roots, rebuilt
	// every minute so a rotation's new issuing CA counts (clienttrust.go).
	trust, err := newClientTrust(ctx, g.ca, cfg.EST, log)
	if err != nil {
		return err
	}
	go trust.run(ctx, time.Minute)

	g.registry = prometheus.NewRegistry()
	g.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Inventory series (certificates by state, expiry, CRL freshness, audit counters), metrics/.
	g.registry.MustRegister(metrics.NewStoreCollector(g.store, metrics.DefaultTTL, log))
	// CRL batching and scheduling, OCSP refresh; one replica runs each job.
	go g.ca.RunRevocation(ctx)
	// A rotation scheduled in the store (by the CLI, a key job or another
	// replica) takes over issuance here at its activation time, no restart.
	go g.ca.RunIssuerWatch(ctx, time.Minute)
	watchHangup(ctx, g.ca, log) // SIGHUP: re-read them now (hangup.go)
	g.ca.SetEarlyMigration(cfg.KeyPolicy.EarlyMigration.D())
	// Rotation-due alerts, automatic rotation, issuer retirement (keyjobs.go).
	go newKeyJobs(e, g).run(ctx)
	// Debris of crashed requests, any replica's (recoverjob.go).
	go newRecoverJob(g.store, log).run(ctx)
	// Signed webhook alerts, when alerts.webhooks is set (alertsrun.go).
	if err := runAlerts(ctx, e, g); err != nil {
		return err
	}
	// Unauthenticated refusals are counted per source and written once a
	// window; the last window is written after the listeners stop.
	g.denials = denials.New(g.store, denials.Options{Log: log})
	go g.denials.Run(ctx)
	defer func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		g.denials.Close(fctx)
	}()
	mounts, err := frontEnds(ctx, g)
	if err != nil {
		return err
	}
	srv, err := server.New(server.Options{
		HTTPSListener:   httpsLn,
		HTTPListener:    httpLn,
		GetCertificate:  certs.get,
		ClientCAsFunc:   trust.Pool,
		Store:           g.store,
		Logger:          log,
		ShutdownTimeout: cfg.Server.ShutdownTimeout.D(),
		MaxBodyBytes:    cfg.Server.MaxBodyBytes,
		Mount:           mounts,
		Registry:        g.registry,
	})
	if err != nil {
		return err
	}
	r := &running{cfg: cfg, engine: g, httpsAddr: srv.HTTPSAddr(), httpAddr: srv.HTTPAddr(), urls: cfg.EffectiveURLs(), mounts: mounts}
	if announce != nil {
		announce(r)
	}
	log.Info("serving", "https", "https://"+r.httpsAddr.String()+"/", "http", "http://"+r.httpAddr.String()+"/",
		"issuer", g.ca.IssuerID(), "crl_base", r.urls.CRLBase, "ocsp", r.urls.OCSP)
	if err := srv.Run(ctx); err != nil {
		return &cliError{code: exitUnavailable, msg: "server stopped with an error", err: err}
	}
	return nil
}

// listenError says why a listener could not be bound, in the operating
// system's words ("address already in use"), and which flag or setting
// picks another address.
func listenError(addr, flagName, key string, err error) error {
	cause := err.Error()
	var se *os.SyscallError
	if errors.As(err, &se) {
		cause = se.Err.Error()
	}
	hint := ""
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		hint = " (another program, or another mica, holds the port)"
	case errors.Is(err, syscall.EACCES):
		hint = " (ports below 1024 need privileges)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		hint = " (no interface of this machine has that address)"
	}
	return &cliError{code: exitUnavailable, err: err,
		msg: fmt.Sprintf("cannot listen on %s: %s%s; choose another address with %s HOST:PORT or %s in mica.yaml", addr, cause, hint, flagName, key)}
}

// pinPort replaces a ":0" port in a configured address with the port the
// kernel picked, keeping the configured host (a wildcard stays a wildcard
// for URL derivation).
func pinPort(addr *string, bound net.Addr) {
	host, port, err := net.SplitHostPort(*addr)
	if err != nil || port != "0" {
		return
	}
	if tcp, ok := bound.(*net.TCPAddr); ok {
		*addr = net.JoinHostPort(host, fmt.Sprint(tcp.Port))
	}
}

// frontEnds returns the protocol front ends to mount. This is the one place
// acme, enroll and web get wired in as they arrive: each is built from the
// engine's CA and store and returned as a server.Mounter.
func frontEnds(ctx context.Context, g *engine) ([]server.Mounter, error) {
	var reg prometheus.Registerer
	if g.registry != nil {
		reg = g.registry
	}
	acmeSrv, err := acmeFrontEnd(ctx, g)
	if err != nil {
		return nil, err
	}
	mounts := []server.Mounter{
		status.New(g.ca, g.log, reg), // CRL and OCSP on the plain listener
		acmeSrv,                      // ACME on the HTTPS listener
	}
	estSrv, err := estFrontEnd(ctx, g, reg)
	if err != nil {
		return nil, err
	}
	if estSrv != nil {
		mounts = append(mounts, estSrv) // EST on the HTTPS listener
	}
	webSrv, err := webFrontEnd(ctx, g)
	if err != nil {
		return nil, err
	}
	mounts = append(mounts, webSrv) // admin API on the HTTPS listener
	return mounts, nil
}

// serverCert holds the HTTPS listener certificate and renews it, through
// the normal issuance path, when two thirds of its lifetime have passed.
type serverCert struct {
	ca    *ca.CA
	names []string
	log   *slog.Logger
	cur   atomic.Pointer[tls.Certificate]
}

func newServerCert(ctx context.Context, c *ca.CA, names []string, log *slog.Logger) (*serverCert, error) {
	s := &serverCert{ca: c, names: names, log: log}
	cert, err := c.ServerCertificate(ctx, names)
	if err != nil {
		return nil, err
	}
	s.cur.Store(&cert)
	return s, nil
}

func (s *serverCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cur.Load(), nil }

func (s *serverCert) renewLoop(ctx context.Context) {
	for {
		leaf := s.cur.Load().Leaf
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		wait := time.Until(leaf.NotBefore.Add(life * 2 / 3))
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, time.Minute)):
		}
		cert, err := s.ca.ServerCertificate(ctx, s.names)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error("renewing the HTTPS certificate failed; retrying in an hour", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Hour):
			}
			continue
		}
		s.cur.Store(&cert)
		s.log.Info("renewed the HTTPS certificate", "serial", inventory.FormatSerialNumber(cert.Leaf.SerialNumber), "not_after", cert.Leaf.NotAfter)
	}
}
