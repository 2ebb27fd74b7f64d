package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/inventory/denials"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

const defaultDataDir = "./mica-data"

// common holds the flags every command takes.
type common struct {
	fs     *flag.FlagSet
	e      *env
	data   string
	config string
	debug  bool
	usage  string // positional part of the usage line
}

// newFlags starts a command's FlagSet with the common flags. Parsing is
// silent; parse prints usage for -h and turns errors into usage errors.
func newFlags(e *env, name, usage string) *common {
	c := &common{fs: flag.NewFlagSet("mica "+name, flag.ContinueOnError), e: e, usage: usage}
	c.fs.SetOutput(io.Discard)
	c.fs.StringVar(&c.data, "data", defaultDataDir, "data `DIR` holding mica.yaml, the database and software keys")
	c.fs.StringVar(&c.config, "config", "", "configuration `FILE` (default DIR/mica.yaml)")
	c.fs.BoolVar(&c.debug, "debug", false, "debug logging and full error details")
	return c
}

// parse parses args, allowing flags after positional arguments
// ("mica cert show 0A:1B --pem"), which the flag package alone does not.
func (c *common) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printUsage(c.e.stdout)
				return nil, errHelp
			}
			return nil, usageErrorf("%s: %v (see '%s -h')", c.fs.Name(), err, c.fs.Name())
		}
		args = c.fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (c *common) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s %s\n\nFlags:\n", c.fs.Name(), c.usage)
	c.fs.SetOutput(w)
	c.fs.PrintDefaults()
	c.fs.SetOutput(io.Discard)
}

// isSet reports whether the flag was given on the command line.
func (c *common) isSet(name string) bool {
	set := false
	c.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// configPath returns the file to read or write.
func (c *common) configPath() string {
	if c.config != "" {
		return c.config
	}
	return config.Path(c.data)
}

// load reads the configuration, explaining how to create it when absent.
func (c *common) load() (*config.Config, error) {
	path := c.configPath()
	cfg, err := config.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, configErrorf("%s does not exist: the data directory is not initialised (run 'mica init --data %s' or 'mica dev --data %s')",
			path, c.data, c.data)
	}
	if err != nil {
		return nil, withCode(exitConfig, err)
	}
	// A secret typed as an argument is refused by every command, including
	// those that never use the secret: it is in the process list already,
	// and saying so is the only useful thing left to do.
	for _, src := range [][2]string{{cfg.Keys.SecretFile, cfg.Keys.SecretEnv}, {cfg.Keys.RootSecretFile, cfg.Keys.RootSecretEnv}} {
		if s, err := hsm.LoadSecret(src[0], src[1]); err == nil {
			if err := checkSecretNotInArgv(c.e.argv, s.Bytes()); err != nil {
				return nil, err
			}
		}
	}
	if c.config != "" && c.isSet("data") {
		want, _ := filepath.Abs(c.data)
		if want != cfg.DataDir {
			return nil, usageErrorf("--data %s disagrees with the data directory %s of %s", c.data, cfg.DataDir, path)
		}
	}
	return cfg, nil
}

// logger builds the slog logger. One-shot commands log warnings and errors
// only, unless --debug: their output is for people and scripts. serve and
// dev use the configured level.
func (c *common) logger(cfg *config.Config, serving bool) *slog.Logger {
	level := slog.LevelWarn
	if serving && cfg != nil {
		switch strings.ToLower(cfg.Log.Level) {
		case "debug":
			level = slog.LevelDebug
		case "info":
			level = slog.LevelInfo
		case "error":
			level = slog.LevelError
		}
	}
	if c.debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(c.e.stderr, opts)
	if cfg != nil && cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(c.e.stderr, opts)
	}
	l := slog.New(h)
	slog.SetDefault(l)
	return l
}

// openStore opens the inventory named by the configuration.
func openStore(ctx context.Context, cfg *config.Config) (*inventory.Store, error) {
	st, err := inventory.Open(ctx, cfg.Database)
	if err != nil {
		return nil, &cliError{code: exitUnavailable, msg: "cannot open the database " + config.RedactDSN(cfg.Database), err: err}
	}
	return st, nil
}

// checkedSecret loads a backend secret with load (from a file or the
// environment, never argv) and makes sure it was not also typed on the
// command line.
func checkedSecret(e *env, load func() (hsm.Secret, error), field string) (hsm.Secret, error) {
	s, err := load()
	if err != nil {
		return hsm.Secret{}, &cliError{code: exitConfig, msg: field + ": " + err.Error()}
	}
	if err := checkSecretNotInArgv(e.argv, s.Bytes()); err != nil {
		return hsm.Secret{}, err
	}
	return s, nil
}

// openBackend opens a key backend. Errors from hsm never hold the secret.
func openBackend(ctx context.Context, uri string, secret hsm.Secret, what string) (hsm.Backend, error) {
	b, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: secret})
	if err != nil {
		code := exitUnavailable
		if errors.Is(err, hsm.ErrUnsupported) {
			code = exitConfig
		}
		msg := "cannot open the " + what + ": " + err.Error()
		if errors.Is(err, hsm.ErrWrongPIN) {
			msg = "cannot open the " + what + ": wrong PIN or passphrase"
		}
		return nil, &cliError{code: code, msg: msg, err: err}
	}
	return b, nil
}

// openKeys opens the issuing key backend of cfg with its secret.
func openKeys(ctx context.Context, e *env, cfg *config.Config) (hsm.Backend, error) {
	secret, err := checkedSecret(e, cfg.Keys.Secret, "keys.secret_file/secret_env")
	if err != nil {
		return nil, err
	}
	return openBackend(ctx, cfg.Keys.Backend, secret, "key backend")
}

// openRootKeys opens the separate root backend, if configured.
func openRootKeys(ctx context.Context, e *env, cfg *config.Config) (hsm.Backend, error) {
	secret, err := checkedSecret(e, cfg.Keys.RootSecret, "keys.root_secret_file/root_secret_env")
	if err != nil {
		return nil, err
	}
	return openBackend(ctx, cfg.Keys.RootBackend, secret, "root key backend")
}

// engine is an opened CA with everything it holds, closed together.
type engine struct {
	cfg   *config.Config
	store *inventory.Store
	keys  hsm.Backend
	ca    *ca.CA
	log   *slog.Logger
	// registry collects the metrics /metrics serves; serve sets it so
	// front ends can register theirs before the server exists.
	registry *prometheus.Registry
	// denials summarises unauthenticated refusals of all front ends
	// (inventory/denials); serve sets it and writes what it holds at exit.
	denials *denials.Summariser
	// eabSealer seals EAB HMAC keys under an HSM-derived key (acme);
	// the ACME front end sets it, the admin API uses it too.
	eabSealer *acme.EABSealer
}

func (g *engine) Close() {
	if g.keys != nil {
		g.keys.Close()
	}
	if g.store != nil {
		g.store.Close()
	}
}

// openEngine opens store, keys and CA engine for cfg.
func openEngine(ctx context.Context, e *env, cfg *config.Config, log *slog.Logger) (*engine, error) {
	g := &engine{cfg: cfg, log: log}
	var err error
	if g.store, err = openStore(ctx, cfg); err != nil {
		return nil, err
	}
	if g.keys, err = openKeys(ctx, e, cfg); err != nil {
		g.Close()
		return nil, err
	}
	// Every signature goes through the key meter (keyscmd.go): counted
	// for the key inventory, refused for a retired key.
	metered, err := meterKeys(ctx, g.store, g.keys, cfg, log)
	if err != nil {
		g.Close()
		return nil, err
	}
	g.keys = metered
	g.ca, err = ca.New(ctx, ca.Options{
		Store:    g.store,
		Keys:     g.keys,
		Profiles: cfg.Profiles,
		URLs:     cfg.EffectiveURLs(),
		Logger:   log,
		// Every command that opens the engine gets revocation: OCSP is
		// pre-signed at issuance and revocation and blocked keys are
		// refused, whether the CLI or the server does the issuing.
		RevocationStore: g.store,
		Revocation:      cfg.Revocation.CA(),
	})
	if err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// actor names the person running the CLI in audit events.
func actor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli:uid-" + fmt.Sprint(os.Getuid())
}

// source names the machine in audit events.
func source() string {
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "localhost"
}
