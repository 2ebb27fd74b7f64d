package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory"
)

// estFrontEnd builds the EST server from the engine, or returns nil when
// mica.yaml configures no EST label.
func estFrontEnd(ctx context.Context, g *engine, reg prometheus.Registerer) (*enroll.Server, error) {
	if len(g.cfg.EST.Labels) == 0 {
		return nil, nil
	}
	s, err := enroll.New(ctx, enroll.Options{
		CA: g.ca, Store: g.store, Keys: g.keys, Config: config.EffectiveEST(g.cfg.EST),
		Profiles: g.ca.ProfileNames(), Logger: g.log, Registry: reg, Denials: g.denials,
	})
	if err != nil {
		return nil, &cliError{code: exitConfig, msg: "est: " + err.Error(), err: err}
	}
	return s, nil
}

// estConfig is the EST section a command acts on: mica.yaml's, or the
// `mica dev` default when it has none.
func estConfig(cfg *config.Config) config.EST {
	if len(cfg.EST.Labels) == 0 {
		return config.DevEST()
	}
	return cfg.EST
}

// runESTTokenCreate creates a one-time enrollment token. The credential is
// printed once, as USER:PASSWORD on the last line, for HTTP Basic.
func runESTTokenCreate(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "est token create", "--label NAME [--ttl D] [--names a,b]")
	label := c.fs.String("label", "default", "EST `LABEL` the token may enroll under")
	ttl := c.fs.String("ttl", "24h", "validity `D` of the token (e.g. 1h, 7d)")
	names := c.fs.String("names", "", "comma-separated `NAMES` the certificate must carry (dns: is assumed; ip:, uri:, email: prefixes)")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("est token create takes no arguments, got %q", pos)
	}
	d, err := config.ParseDuration(*ttl)
	if err != nil || d <= 0 {
		return usageErrorf("--ttl: %v", errOr(err, "must be positive"))
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	var list []string
	if *names != "" {
		list = strings.Split(*names, ",")
	}
	estCfg := estConfig(cfg)
	if err := enroll.CheckTokenRequest(estCfg, *label, list, d); err != nil {
		return usageErrorf("%s", strings.TrimPrefix(err.Error(), inventory.ErrInvalid.Error()+": "))
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	admin := &enroll.TokenAdmin{Store: st, Config: estCfg}
	tok, cred, err := admin.CreateToken(ctx, *label, list, d, inventory.Event{Actor: actor(), Protocol: "cli", Source: source(), Outcome: "ok"})
	if err != nil {
		return &cliError{code: exitUnavailable, msg: "cannot store the token", err: err}
	}
	fmt.Fprintf(e.stdout, "EST enrollment token for label %s, valid until %s, usable once", *label, tok.ExpiresAt.UTC().Format(time.RFC3339))
	if len(tok.Names) > 0 {
		fmt.Fprintf(e.stdout, ", for %s", strings.Join(tok.Names, ", "))
	}
	fmt.Fprintf(e.stdout, ".\nIt is shown only now; only its hash is stored. HTTP Basic USER:PASSWORD (last line):\n%s\n", cred)
	return nil
}

// runESTPending lists enrollments held for approval.
func runESTPending(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "est pending", "[--all]")
	all := c.fs.Bool("all", false, "list decided enrollments too")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("est pending takes no arguments, got %q", pos)
	}
	st, err := openStoreOnly(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	status := "pending"
	if *all {
		status = ""
	}
	list, err := st.ESTPendings(ctx, status)
	if err != nil {
		return &cliError{code: exitUnavailable, msg: "cannot list held enrollments", err: err}
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLABEL\tSTATUS\tREQUESTER\tSOURCE\tCREATED")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Label, p.Status, p.Requester, p.Source, p.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func runESTApprove(ctx context.Context, e *env, args []string) error {
	return decideEST(ctx, e, "approve", "approved", args)
}

func runESTReject(ctx context.Context, e *env, args []string) error {
	return decideEST(ctx, e, "reject", "rejected", args)
}

func decideEST(ctx context.Context, e *env, verb, status string, args []string) error {
	c := newFlags(e, "est "+verb, "ID")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("est %s takes one held enrollment ID (see 'mica est pending')", verb)
	}
	st, err := openStoreOnly(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	err = st.DecideESTPending(ctx, pos[0], status, actor(), inventory.Event{Actor: actor(), Protocol: "cli", Source: source(), Outcome: "ok"})
	switch {
	case errors.Is(err, inventory.ErrNotFound):
		return &cliError{code: exitNotFound, msg: "no held EST enrollment " + pos[0]}
	case errors.Is(err, inventory.ErrConflict):
		return &cliError{code: exitRefused, msg: err.Error()}
	case err != nil:
		return &cliError{code: exitUnavailable, msg: "cannot record the decision", err: err}
	}
	fmt.Fprintf(e.stdout, "EST enrollment %s %s; the device gets its certificate on its next retry.\n", pos[0], status)
	return nil
}

// addESTRoots adds every EST label's trusted_roots to pool.
func addESTRoots(pool *x509.CertPool, est config.EST) error {
	for name, l := range est.Labels {
		for _, f := range l.TrustedRoots {
			b, err := os.ReadFile(f)
			if err != nil || !pool.AppendCertsFromPEM(b) {
				return &cliError{code: exitConfig, msg: fmt.Sprintf("est.labels.%s.trusted_roots: cannot read PEM certificates from %s", name, f), err: err}
			}
		}
	}
	return nil
}
