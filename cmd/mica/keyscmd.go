package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// meterKeys registers any issuer key the key inventory does not list yet
// and wraps the backend so every signature is counted and a retired key
// refuses to sign. Counts are flushed every 30 s and when the engine
// closes.
func meterKeys(ctx context.Context, st *inventory.Store, b hsm.Backend, cfg *config.Config, log *slog.Logger) (hsm.Backend, error) {
	if err := syncAllKeys(ctx, st, b, cfg, os.Getenv, ca.Actor{Name: "mica", Protocol: "system", Source: source()}); err != nil {
		return nil, err
	}
	m, err := ca.NewMeteredKeys(ctx, b, st, ca.MeterOptions{Logger: log})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// syncAllKeys registers every key the inventory does not list yet: issuer
// keys, the EST pool-sealing key and ACME EAB keys (ca.SyncKeys), and the
// webhook HMAC secrets of the alerts configuration (by source, never by
// value; a secret that cannot be read is registered with size 0 and the
// alert engine reports the read error itself).
func syncAllKeys(ctx context.Context, st *inventory.Store, b hsm.Backend, cfg *config.Config, getenv func(string) string, who ca.Actor) error {
	pol := cfg.KeyPolicy.CA()
	if _, err := ca.SyncKeys(ctx, st, b, pol, who); err != nil {
		return err
	}
	var secrets []ca.SecretKey
	for i, w := range cfg.Alerts.Webhooks {
		src := "env:" + w.SecretEnv
		if w.SecretFile != "" {
			src = "file:" + w.SecretFile
		}
		bits := 0
		if sec, err := w.Secret(getenv); err == nil {
			bits = 8 * len(sec)
		}
		secrets = append(secrets, ca.SecretKey{ID: fmt.Sprintf("webhook-%d", i+1), Class: ca.KeyClassWebhookHMAC, Source: src, Bits: bits})
	}
	return ca.RegisterSecrets(ctx, st, secrets, pol, who)
}

// cliActor is the audit identity of the person at the terminal.
func cliActor() ca.Actor { return ca.Actor{Name: actor(), Protocol: "cli", Source: source()} }

// keyView is one key as `keys list` shows it.
type keyView struct {
	inventory.Key
	DueIn string `json:"due_in,omitempty"`
}

// runKeysList prints the key inventory.
func runKeysList(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "keys list", "[--json]")
	asJSON := c.fs.Bool("json", false, "print JSON")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("keys list takes no arguments, got %q", pos)
	}
	st, _, err := syncedStore(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := st.Keys(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	views := make([]keyView, len(keys))
	for i, k := range keys {
		views[i] = keyView{Key: k}
		if k.RotationDue != nil && (k.Status == inventory.KeyActive || k.Status == inventory.KeyPreActivation) {
			views[i].DueIn = ca.HumanDuration(k.RotationDue.Sub(now).Round(time.Hour))
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	// Dates only (UTC): --json has the full timestamps.
	fmt.Fprintln(tw, "ID\tCLASS\tSTATUS\tALGORITHM\tBACKEND\tCREATED\tUSES\tFIRST USED\tLAST USED\tCRYPTOPERIOD\tROTATION DUE\tPROTECTION\tURI")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Class, v.Status, v.Algorithm, v.Backend,
			fmtDatePtr(&v.Created), usesSummary(v.Key), fmtDatePtr(v.FirstUsed), fmtDatePtr(v.LastUsed), fmtPeriod(v.Cryptoperiod),
			fmtDatePtr(v.RotationDue), protectionSummary(v.Protection), orDash(v.URI))
	}
	return tw.Flush()
}

// syncedStore opens the store and registers any key the inventory does
// not list yet. It needs no working CA (every issuer may be retired), and
// reads key protection from the backend when the backend opens.
func syncedStore(ctx context.Context, c *common) (*inventory.Store, *config.Config, error) {
	cfg, err := c.load()
	if err != nil {
		return nil, nil, err
	}
	log := c.logger(cfg, false)
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	b, err := openKeys(ctx, c.e, cfg)
	if err != nil {
		log.Warn("key backend not available; key protection is not read", "err", err)
		b = nil
	} else {
		defer b.Close()
	}
	if err := syncAllKeys(ctx, st, b, cfg, c.e.getenv, ca.Actor{Name: "mica", Protocol: "system", Source: source()}); err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, cfg, nil
}

// fmtDatePtr writes a date as 2006-01-02 (UTC), "-" for none.
func fmtDatePtr(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02")
}

// usesSummary is the use count, or says that the key is not metered.
func usesSummary(k inventory.Key) string {
	if k.Metering == inventory.MeteringNone {
		return "not metered"
	}
	return fmt.Sprint(k.Signatures)
}

// fmtPeriod prints a cryptoperiod in days.
func fmtPeriod(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%dd", int64(d/(24*time.Hour)))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func protectionSummary(raw json.RawMessage) string {
	var p hsm.Protection
	if len(raw) == 0 || json.Unmarshal(raw, &p) != nil || p.Backend == "" {
		return "-"
	}
	if p.Backend == "pkcs11" {
		return fmt.Sprintf("token sensitive=%t never-extractable=%t", p.Sensitive, p.NeverExtractable)
	}
	if p.Encrypted {
		return "software, encrypted file"
	}
	return "software"
}

// runKeysRetire takes a key out of service: the signing path refuses it
// from the next refresh on (at once in this process).
func runKeysRetire(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "keys retire", "ID [--force]")
	force := c.fs.Bool("force", false, "retire even though the issuer still has unexpired certificates (key compromise)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("keys retire takes one key ID")
	}
	st, _, err := syncedStore(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := ca.RetireKey(ctx, st, pos[0], time.Now(), *force, cliActor()); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "key %s retired: it can no longer sign\n", pos[0])
	return nil
}

// runKeysDestroy deletes a retired key's private key object from its
// backend once its class's retention period (key_policy.retention) has
// passed. The public key and every certificate stay in the store.
func runKeysDestroy(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "keys destroy", "ID --confirm")
	confirm := c.fs.Bool("confirm", false, "really destroy the private key (irreversible)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("keys destroy takes one key ID")
	}
	if !*confirm {
		return usageErrorf("destroying a key is irreversible: add --confirm")
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if err := cfg.KeyPolicy.CheckRetention(); err != nil {
		return configErrorf("%v", err)
	}
	log := c.logger(cfg, false)
	// Not openEngine: a CA may not be buildable once its keys are retired,
	// and destroying needs only the store and the backend.
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	k, err := st.Key(ctx, pos[0])
	if err != nil {
		return err
	}
	var b hsm.Backend
	if k.URI != "" {
		open := openKeys
		if cfg.Keys.RootBackend != "" && k.Class == ca.KeyClassRoot {
			open = openRootKeys
		}
		if b, err = open(ctx, e, cfg); err != nil {
			return err
		}
		defer b.Close()
	}
	if err := ca.DestroyKeyRetained(ctx, st, b, pos[0], cfg.KeyPolicy.CA(), time.Now(), cliActor()); err != nil {
		return err
	}
	log.Info("key destroyed", "key", pos[0])
	fmt.Fprintf(e.stdout, "key %s destroyed; its public key and certificates remain in the inventory\n", pos[0])
	return nil
}
