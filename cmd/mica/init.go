package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/hsm"
)

// Files init writes into the data directory.
const (
	rootPEM       = "root.pem"
	issuingPEM    = "issuing.pem"
	chainPEM      = "chain.pem"
	offlineDir    = "offline-root"
	offlineREADME = "README.txt"
)

func runInit(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "init", "[flags]")
	fs := c.fs
	var (
		backend         = fs.String("backend", "", "key backend `URI` for the issuing (and root) key (default softkms:dir=DIR/keys)")
		rootBackend     = fs.String("root-backend", "", "separate backend `URI` for the root key (with --offline-root default softkms:dir=DIR/offline-root)")
		secretFile      = fs.String("secret-file", "", "`FILE` holding the backend PIN or passphrase")
		secretEnv       = fs.String("secret-env", "", "environment `VAR` holding the backend PIN or passphrase")
		rootSecretFile  = fs.String("root-secret-file", "", "`FILE` holding the root backend's PIN or passphrase (default: --secret-file/--secret-env)")
		rootSecretEnv   = fs.String("root-secret-env", "", "environment `VAR` holding the root backend's PIN or passphrase")
		rootKeyType     = fs.String("root-key-type", "", "root key `TYPE`: EC-P256, EC-P384, RSA-2048, RSA-3072, RSA-4096, Ed25519 (default EC-P384)")
		issuingKeyType  = fs.String("issuing-key-type", "", "issuing key `TYPE` (default EC-P256)")
		rootCN          = fs.String("root-cn", "", "root CA common `NAME` (default \"MICA Root CA YEAR\")")
		issuingCN       = fs.String("issuing-cn", "", "issuing CA common `NAME` (default \"MICA Issuing CA YEAR\")")
		org             = fs.String("org", "", "`ORGANIZATION` in both CA subjects")
		rootValidity    = fs.String("root-validity", "", "root validity `D`, e.g. 10y, 3650d (default 3652d)")
		issuingValidity = fs.String("issuing-validity", "", "issuing CA validity `D` (default 1826d)")
		rootID          = fs.String("root-id", "", "root issuer `ID` used in URLs (default root-YEAR)")
		issuingID       = fs.String("issuing-id", "", "issuing issuer `ID` used in URLs (default issuing-YEAR)")
		offlineRoot     = fs.Bool("offline-root", false, "keep the root key offline: create it in the root backend and never record it as usable")
		database        = fs.String("database", "", "database `DSN`: sqlite:PATH or postgres://… (default sqlite:DIR/mica.db)")
		listen          = fs.String("listen", "", "HTTPS listen `HOST:PORT` (default 127.0.0.1:8443)")
		httpListen      = fs.String("http-listen", "", "plain-HTTP listen `HOST:PORT` for CRL/OCSP/AIA (default 127.0.0.1:8080)")
		httpBase        = fs.String("http-base", "", "public `URL` of the plain-HTTP listener written into certificates (default http://HTTP-LISTEN)")
	)
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("init takes no arguments, got %q", pos)
	}

	dataDir, err := filepath.Abs(c.data)
	if err != nil {
		return err
	}
	cfg := config.Default(dataDir)
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Keys.Backend, *backend)
	set(&cfg.Keys.RootBackend, *rootBackend)
	set(&cfg.Keys.SecretFile, *secretFile)
	set(&cfg.Keys.SecretEnv, *secretEnv)
	set(&cfg.Keys.RootSecretFile, *rootSecretFile)
	set(&cfg.Keys.RootSecretEnv, *rootSecretEnv)
	set(&cfg.CA.RootCN, *rootCN)
	set(&cfg.CA.IssuingCN, *issuingCN)
	set(&cfg.CA.Organization, *org)
	set(&cfg.CA.RootID, *rootID)
	set(&cfg.CA.IssuingID, *issuingID)
	set(&cfg.Database, *database)
	set(&cfg.Server.Listen, *listen)
	set(&cfg.Server.HTTPListen, *httpListen)
	cfg.CA.OfflineRoot = *offlineRoot
	for flagName, kt := range map[string]struct {
		v   string
		dst *string
	}{"--root-key-type": {*rootKeyType, &cfg.CA.RootKeyType}, "--issuing-key-type": {*issuingKeyType, &cfg.CA.IssuingKeyType}} {
		if kt.v == "" {
			continue
		}
		t, err := hsm.ParseKeyType(kt.v)
		if err != nil {
			return usageErrorf("%s: %v", flagName, err)
		}
		*kt.dst = string(t)
	}
	for flagName, d := range map[string]struct {
		v   string
		dst *config.Duration
	}{"--root-validity": {*rootValidity, &cfg.CA.RootValidity}, "--issuing-validity": {*issuingValidity, &cfg.CA.IssuingValidity}} {
		if d.v == "" {
			continue
		}
		v, err := config.ParseDuration(d.v)
		if err != nil {
			return usageErrorf("%s: %v", flagName, err)
		}
		*d.dst = config.Duration(v)
	}
	if *httpBase != "" {
		base := strings.TrimRight(*httpBase, "/")
		cfg.URLs = ca.URLs{CRLBase: base + "/crl/", OCSP: base + "/ocsp", CAIssuersBase: base + "/ca/"}
	}
	if *secretFile != "" && *secretEnv != "" {
		return usageErrorf("give either --secret-file or --secret-env, not both")
	}
	// Paths typed on the command line are relative to where the operator
	// stands; Write turns those under DIR back into relative ones.
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	cfg.ResolvePaths(wd)
	log := c.logger(nil, false)
	_, err = initialise(ctx, e, cfg, c.configPath(), log)
	return err
}

// initialise creates the CA hierarchy for cfg and writes mica.yaml to
// path, last, so that a directory with a mica.yaml is always a working one.
// `mica dev` calls it too.
func initialise(ctx context.Context, e *env, cfg *config.Config, path string, log *slog.Logger) (*ca.InitResult, error) {
	for _, p := range []string{path, filepath.Join(cfg.DataDir, rootPEM)} {
		if _, err := os.Stat(p); err == nil {
			return nil, configErrorf("%s is already initialised (%s exists); refusing to initialise it again", cfg.DataDir, p)
		}
	}
	softMain := strings.HasPrefix(cfg.Keys.Backend, "softkms:")
	if cfg.CA.OfflineRoot && cfg.Keys.RootBackend == "" {
		if !softMain {
			return nil, usageErrorf("--offline-root with a %s backend needs --root-backend: a second token, or softkms:dir=… on removable media",
				strings.SplitN(cfg.Keys.Backend, ":", 2)[0])
		}
		cfg.Keys.RootBackend = hsm.SoftKMSURI(filepath.Join(cfg.DataDir, offlineDir))
	}
	if err := cfg.Validate(); err != nil {
		return nil, withCode(exitConfig, err)
	}
	if cfg.Keys.SecretFile == "" && cfg.Keys.SecretEnv == "" {
		what := "the HSM user PIN"
		if softMain {
			what = "a passphrase to encrypt the software keys"
		}
		return nil, configErrorf("the key backend needs %s: give it in a file (--secret-file FILE) or an environment variable (--secret-env VAR)", what)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}

	store, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	keys, err := openKeys(ctx, e, cfg)
	if err != nil {
		return nil, err
	}
	defer keys.Close()
	rootKeys := keys
	if cfg.Keys.RootBackend != "" {
		if rootKeys, err = openRootKeys(ctx, e, cfg); err != nil {
			return nil, err
		}
		defer rootKeys.Close()
	}
	rootKT, issKT, err := cfg.KeyTypes()
	if err != nil {
		return nil, withCode(exitConfig, err)
	}
	// Count init's signatures (the root signs itself, the intermediate and
	// its first CRL) like every later one: the meters hold them until the
	// key rows exist, then flush them into those rows.
	rawKeys := keys
	meters := []*ca.MeteredKeys{}
	meter := func(b hsm.Backend) (hsm.Backend, error) {
		m, err := ca.NewMeteredKeys(ctx, b, store, ca.MeterOptions{FlushEvery: -1, Logger: log})
		if err != nil {
			return nil, err
		}
		meters = append(meters, m)
		return m, nil
	}
	sameBackend := rootKeys == keys
	if keys, err = meter(keys); err != nil {
		return nil, err
	}
	if sameBackend {
		rootKeys = keys
	} else if rootKeys, err = meter(rootKeys); err != nil {
		return nil, err
	}
	res, err := ca.Init(ctx, ca.InitOptions{
		Store:           store,
		RootKeys:        rootKeys,
		Keys:            keys,
		RootKeyType:     rootKT,
		IssuingKeyType:  issKT,
		RootSubject:     ca.Subject{CommonName: cfg.CA.RootCN, Organization: cfg.CA.Organization},
		IssuingSubject:  ca.Subject{CommonName: cfg.CA.IssuingCN, Organization: cfg.CA.Organization},
		RootValidity:    cfg.CA.RootValidity.D(),
		IssuingValidity: cfg.CA.IssuingValidity.D(),
		RootID:          cfg.CA.RootID,
		IssuingID:       cfg.CA.IssuingID,
		OfflineRoot:     cfg.CA.OfflineRoot,
		RootCRLValidity: rootCRLValidity(cfg),
		URLs:            cfg.EffectiveURLs(),
		Actor:           actor(),
		Source:          source(),
		Logger:          log,
	})
	if err != nil {
		return nil, err
	}
	if err := syncAllKeys(ctx, store, rawKeys, cfg, os.Getenv, ca.Actor{Name: actor(), Protocol: "cli", Source: source()}); err != nil {
		return nil, err
	}
	for _, m := range meters {
		if err := m.Flush(ctx); err != nil {
			return nil, err
		}
	}

	files := map[string][]*x509.Certificate{
		rootPEM:    {res.Root},
		issuingPEM: {res.Issuing},
		chainPEM:   {res.Issuing, res.Root},
	}
	for name, certs := range files {
		if err := config.WriteFileAtomic(filepath.Join(cfg.DataDir, name), encodeCerts(certs...), 0o644); err != nil {
			return nil, err
		}
	}
	if cfg.CA.OfflineRoot {
		if err := writeOfflineREADME(e.stdout, cfg, res); err != nil {
			return nil, err
		}
	}
	// Record what init actually used, so mica.yaml documents the hierarchy.
	cfg.CA.RootID, cfg.CA.IssuingID = res.RootIssuer.ID, res.IssuingIssuer.ID
	cfg.CA.RootCN, cfg.CA.IssuingCN = res.Root.Subject.CommonName, res.Issuing.Subject.CommonName
	if err := cfg.Write(path); err != nil {
		return nil, err
	}

	w := e.stdout
	fmt.Fprintf(w, "Initialised MICA in %s\n", cfg.DataDir)
	for _, x := range []struct {
		role, id, uri string
		cert          *x509.Certificate
	}{
		{"root CA", res.RootIssuer.ID, res.RootKeyURI, res.Root},
		{"issuing CA", res.IssuingIssuer.ID, res.IssuingKeyURI, res.Issuing},
	} {
		fmt.Fprintf(w, "  %-10s  %s (id %s)\n", x.role, x.cert.Subject.String(), x.id)
		fmt.Fprintf(w, "              SHA-256 %s\n", fingerprint(x.cert.Raw))
		fmt.Fprintf(w, "              valid until %s, key %s\n", x.cert.NotAfter.UTC().Format(time.RFC3339), x.uri)
	}
	if res.RootOffline {
		fmt.Fprintf(w, "  the root key is OFFLINE: it is not recorded as usable; see the instructions above\n")
	}
	fmt.Fprintf(w, "Wrote %s, %s, %s and %s\n", filepath.Join(cfg.DataDir, rootPEM), issuingPEM, chainPEM, filepath.Base(path))
	return res, nil
}

func encodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// writeOfflineREADME writes and prints what an operator must do with an
// offline root: where the key is, where to move it, and how to use it for
// the next intermediate. It goes next to a softkms root key (so it travels
// with the key), else into DIR/offline-root.
func writeOfflineREADME(w io.Writer, cfg *config.Config, res *ca.InitResult) error {
	dir := config.URIPath(cfg.Keys.RootBackend, "dir")
	if !strings.HasPrefix(cfg.Keys.RootBackend, "softkms:") || dir == "" {
		dir = filepath.Join(cfg.DataDir, offlineDir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := config.WriteFileAtomic(filepath.Join(dir, rootPEM), encodeCerts(res.Root), 0o644); err != nil {
		return err
	}
	secretFrom := "the same PIN or passphrase as the online keys"
	switch {
	case cfg.Keys.RootSecretFile != "":
		secretFrom = "the PIN or passphrase in " + cfg.Keys.RootSecretFile
	case cfg.Keys.RootSecretEnv != "":
		secretFrom = "the PIN or passphrase from the environment variable " + cfg.Keys.RootSecretEnv
	}
	text := fmt.Sprintf(`MICA OFFLINE ROOT CA
====================

This directory belongs with the private key of the root CA
  %s (issuer id %s)
  SHA-256 fingerprint %s
  valid until %s
created by 'mica init' on %s at %s.

The root key is at
  %s
protected by %s.
MICA's online service (mica serve) never opens it: the store records the
root without a key, and only the issuing CA %s signs certificates.

WHAT TO DO NOW
1. Move the root key to offline storage. For a software root, move this
   whole directory (the .key file, root.pem and this README) to encrypted
   removable media kept in a safe, and remove it from this machine:
       cp -a %s /media/OFFLINE/ && verify the copy && rm -rf %s
   For an HSM root, take the token offline. Keep the PIN or passphrase
   apart from the key, as your key-management policy requires.
2. Write the fingerprint above into the ceremony log. Relying parties trust
   root.pem (a copy stays in %s).

SIGNING A NEW INTERMEDIATE LATER
Before the issuing CA expires (or to rotate it), on an offline machine:
1. Restore this directory (or attach the token) and set the secret up as a
   file or environment variable, never as a command-line argument.
2. On the online CA, create the new issuing key and its CSR; on the offline
   machine, sign that CSR with the root key above (ca.SignIntermediate; the
   CLI commands 'mica ca rotate --csr-out', 'mica ca sign-intermediate' and
   'mica ca import' follow this procedure, see docs/key-ceremony.md).
3. Import the signed intermediate into the online CA, then return the root
   key to offline storage and record the ceremony.
`,
		res.Root.Subject.String(), res.RootIssuer.ID, fingerprint(res.Root.Raw),
		res.Root.NotAfter.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339), source(),
		res.RootKeyURI, secretFrom, res.IssuingIssuer.ID,
		dir, dir, filepath.Join(cfg.DataDir, rootPEM))
	path := filepath.Join(dir, offlineREADME)
	if err := config.WriteFileAtomic(path, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\n(written to %s)\n\n", text, path)
	return nil
}

// rootCRLValidity is how long the root CRL signed at init lasts. The
// server re-signs it only when its own key backend holds the root key;
// a root in a separate backend (keys.root_backend, offline or not) is
// re-signed at a ceremony (ca sign-intermediate --crl-out), so its CRL
// must last until then.
func rootCRLValidity(cfg *config.Config) time.Duration {
	if cfg.CA.OfflineRoot || cfg.Keys.RootBackend != "" {
		return ca.DefaultOfflineRootCRLValidity
	}
	return 0 // the default: crl_validity, refreshed by the revocation worker
}
