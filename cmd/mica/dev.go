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

	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/server"
)

// passphraseFile holds the generated softkms passphrase of a dev CA.
const passphraseFile = "passphrase"

func runDev(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "dev", "[flags]")
	listen := c.fs.String("listen", "", "HTTPS `HOST:PORT` (default 127.0.0.1:8443)")
	httpListen := c.fs.String("http-listen", "", "plain-HTTP `HOST:PORT` (default 127.0.0.1:8080)")
	acmeF := addACMEFlags(c.fs)
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
	if len(cfg.EST.Labels) == 0 {
		cfg.EST = config.DevEST() // EST "default" label at /.well-known/est/
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
	return serve(ctx, e, cfg, log, func(r *running) { printBanner(e, r) })
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

// printBanner tells the developer where everything is: the root to trust,
// its fingerprint to check, and every URL that answers.
func printBanner(e *env, r *running) {
	w := e.stdout
	g := r.engine
	root := g.ca.Root()
	rootPath := filepath.Join(r.cfg.DataDir, rootPEM)
	https := "https://" + r.httpsAddr.String()
	plain := "http://" + r.httpAddr.String()
	fmt.Fprintf(w, "MICA development CA is running.\n\n")
	fmt.Fprintf(w, "Root certificate: %s\n", rootPath)
	fmt.Fprintf(w, "Root SHA-256 fingerprint: %s\n", fingerprint(root.Raw))
	fmt.Fprintf(w, "Issuing CA: %s (id %s)\n\n", g.ca.Chain()[0].Subject.String(), g.ca.IssuerID())
	fmt.Fprintf(w, "HTTPS  %s/\n", https)
	fmt.Fprintf(w, "       %s/healthz\n", https)
	fmt.Fprintf(w, "       %s/metrics\n", https)
	fmt.Fprintf(w, "HTTP   %s/\n", plain)
	fmt.Fprintf(w, "       %s/healthz\n", plain)
	fmt.Fprintf(w, "       %s/metrics\n", plain)
	if issuers, err := g.store.Issuers(context.Background()); err == nil {
		for _, is := range issuers {
			fmt.Fprintf(w, "       %s/ca/%s.crt\n", plain, is.ID)
		}
	}
	for _, m := range r.mounts {
		if d, ok := m.(server.Describer); ok {
			for _, line := range d.Describe(https, plain) {
				fmt.Fprintf(w, "       %s\n", line)
			}
		}
	}
	fmt.Fprintf(w, "\nURLs written into certificates (CRL and OCSP are served once the revocation front end is mounted):\n")
	fmt.Fprintf(w, "  CRL        %s%s.crl\n", r.urls.CRLBase, g.ca.IssuerID())
	fmt.Fprintf(w, "  OCSP       %s\n", r.urls.OCSP)
	fmt.Fprintf(w, "  caIssuers  %s%s.crt\n", r.urls.CAIssuersBase, g.ca.IssuerID())
	fmt.Fprintf(w, "\nTry: curl --cacert %s %s/healthz\n", rootPath, https)
	fmt.Fprintf(w, "     mica cert issue --data %s --csr req.pem --profile server\n\n", r.cfg.DataDir)
	if f, ok := w.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
}
