package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mica-pki/mica/inventory"
)

// Defaults for zero Options fields.
const (
	DefaultShutdownTimeout = 15 * time.Second
	DefaultMaxBodyBytes    = 1 << 20
)

// Store is what the server reads from the inventory: liveness for /healthz
// and the CA certificates for /ca/{issuer}.crt. Methods are called
// concurrently from request goroutines and must honour ctx.
// *inventory.Store satisfies it.
type Store interface {
	Ping(ctx context.Context) error
	Issuers(ctx context.Context) ([]inventory.Issuer, error)
}

// Mounter registers a front end's routes. https serves browsers, ACME and
// EST clients; plain serves relying parties (CRL, OCSP). Mount is called
// once, before any request, from New.
type Mounter interface {
	Mount(https, plain chi.Router)
}

// MountFunc adapts a function to Mounter.
type MountFunc func(https, plain chi.Router)

// Mount calls f.
func (f MountFunc) Mount(https, plain chi.Router) { f(https, plain) }

// Describer may be implemented by a Mounter to list the URLs it serves
// (e.g. "ACME directory https://…/acme/server/directory"), given the two
// listeners' base URLs without a trailing slash. `mica dev` prints them,
// so a new front end shows up in the banner without cmd/mica knowing its
// paths.
type Describer interface {
	Describe(httpsBase, plainBase string) []string
}

// Options configure a Server. Listen, HTTPListen, GetCertificate and Store
// are required.
type Options struct {
	Listen     string // HTTPS, HOST:PORT (port 0 picks a free one)
	HTTPListen string // plain HTTP, HOST:PORT
	// HTTPSListener and HTTPListener, when set, are used instead of
	// binding Listen and HTTPListen. cmd/mica binds first so the real
	// addresses (port 0) are known when it builds the CA's URLs and the
	// front ends, before New.
	HTTPSListener, HTTPListener net.Listener

	// GetCertificate supplies the HTTPS server certificate per handshake,
	// so cmd/mica can renew it without a restart.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ClientCAs, when set, makes the HTTPS listener ask for a client
	// certificate and verify one if given (EST over mutual TLS). Routes
	// decide what an unauthenticated client may do.
	ClientCAs *x509.CertPool
	// ClientCAsFunc, when set, supplies the client-certificate trust pool
	// at every handshake instead of ClientCAs, so anchors added while the
	// server runs (an issuing CA activated by a rotation) are trusted
	// without a restart. It must be safe for concurrent use and cheap: it
	// runs once per TLS handshake.
	ClientCAsFunc func() *x509.CertPool

	Store           Store
	Logger          *slog.Logger  // nil: slog.Default()
	ShutdownTimeout time.Duration // zero: DefaultShutdownTimeout
	MaxBodyBytes    int64         // zero: DefaultMaxBodyBytes
	Mount           []Mounter
	// Registry receives the server's metrics and is served on /metrics;
	// front ends may register their own collectors on it. Nil: a fresh
	// registry with the Go and process collectors.
	Registry *prometheus.Registry
}

// Server is a bound pair of listeners with their routers. Create it with
// New, then call Run once.
type Server struct {
	opts        Options
	log         *slog.Logger
	https       *http.Server
	plain       *http.Server
	httpsLn     net.Listener
	plainLn     net.Listener
	closeOnce   sync.Once
	httpsRouter chi.Router
	plainRouter chi.Router
}

// New binds both listeners and builds the routers; bind errors (port in
// use) surface here, before anything is announced as running.
func New(opts Options) (*Server, error) {
	if opts.GetCertificate == nil {
		return nil, errors.New("server: GetCertificate is required")
	}
	if opts.Store == nil {
		return nil, errors.New("server: Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s := &Server{opts: opts, log: opts.Logger}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	s.httpsRouter = s.router("https", m)
	s.plainRouter = s.router("http", m)
	s.plainRouter.Get("/ca/{file}", s.caCert)
	for _, mt := range opts.Mount {
		mt.Mount(s.httpsRouter, s.plainRouter)
	}

	tlsCfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: opts.GetCertificate,
	}
	if opts.ClientCAs != nil {
		tlsCfg.ClientAuth = tls.VerifyClientCertIfGiven
		tlsCfg.ClientCAs = opts.ClientCAs
	}
	if opts.ClientCAsFunc != nil {
		tlsCfg.ClientAuth = tls.VerifyClientCertIfGiven
		// The per-handshake config replaces this one whole, ALPN included,
		// so it must offer HTTP/2 itself (http.Server only adds "h2" to
		// the config it is given, not to what GetConfigForClient returns).
		tlsCfg.NextProtos = []string{"h2", "http/1.1"}
		base := tlsCfg.Clone()
		// One config per pool: cloned only when ClientCAsFunc hands back
		// a new pool, not on every handshake.
		type pooled struct {
			pool *x509.CertPool
			cfg  *tls.Config
		}
		var cached atomic.Pointer[pooled]
		tlsCfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			p := opts.ClientCAsFunc()
			if c := cached.Load(); c != nil && c.pool == p {
				return c.cfg, nil
			}
			c := base.Clone()
			c.ClientCAs = p
			cached.Store(&pooled{pool: p, cfg: c})
			return c, nil
		}
	}
	// Handshake failures from scanners and curl -k probes are noise at
	// info level; http.Server's own messages go to slog at debug.
	errLog := slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug)
	s.https = &http.Server{
		Handler:           s.httpsRouter,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          errLog,
	}
	s.plain = &http.Server{
		Handler:           s.plainRouter,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          errLog,
	}

	s.httpsLn, s.plainLn = opts.HTTPSListener, opts.HTTPListener
	if s.httpsLn == nil {
		if s.httpsLn, err = net.Listen("tcp", opts.Listen); err != nil {
			return nil, fmt.Errorf("server: HTTPS listener on %s: %w", opts.Listen, err)
		}
	}
	if s.plainLn == nil {
		if s.plainLn, err = net.Listen("tcp", opts.HTTPListen); err != nil {
			s.httpsLn.Close()
			return nil, fmt.Errorf("server: HTTP listener on %s: %w", opts.HTTPListen, err)
		}
	}
	return s, nil
}

// HTTPSAddr is the bound HTTPS address (with the real port when 0 was asked).
func (s *Server) HTTPSAddr() net.Addr { return s.httpsLn.Addr() }

// HTTPAddr is the bound plain-HTTP address.
func (s *Server) HTTPAddr() net.Addr { return s.plainLn.Addr() }

// Handlers returns the two routers, for tests that drive them through
// httptest without listening.
func (s *Server) Handlers() (https, plain http.Handler) { return s.httpsRouter, s.plainRouter }

// Close releases the listeners of a Server whose Run was never called.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() { err = errors.Join(s.httpsLn.Close(), s.plainLn.Close()) })
	return err
}

// Run serves until ctx ends, then stops accepting, lets in-flight requests
// finish for up to ShutdownTimeout, and returns nil. If either listener
// fails, the other is shut down too and the error returned.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.https.ServeTLS(s.httpsLn, "", "") }()
	go func() { errc <- s.plain.Serve(s.plainLn) }()
	s.log.Info("listening", "https", s.HTTPSAddr().String(), "http", s.HTTPAddr().String())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		// One listener died on its own (it never returns ErrServerClosed
		// before Shutdown): stop the other and report.
	}
	s.log.Info("shutting down", "timeout", s.opts.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var shutErr [2]error
	for i, hs := range []*http.Server{s.https, s.plain} {
		wg.Go(func() { shutErr[i] = hs.Shutdown(sctx) })
	}
	wg.Wait()
	if err := errors.Join(shutErr[:]...); err != nil {
		// In-flight requests outlived the timeout: cut them off.
		s.https.Close()
		s.plain.Close()
		if serveErr == nil {
			serveErr = fmt.Errorf("server: graceful shutdown: %w", err)
		}
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("server: %w", serveErr)
	}
	s.log.Info("stopped")
	return nil
}
