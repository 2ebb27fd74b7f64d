package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/mica-pki/mica/hsm"
)

// runHSMKeys lists what the backend holds, as the backend reports it
// (token attributes for PKCS#11), so operators can compare with their
// vendor's tool.
func runHSMKeys(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "hsm keys", "[flags]")
	root := c.fs.Bool("root", false, "list the root backend (keys.root_backend) instead")
	asJSON := c.fs.Bool("json", false, "print JSON")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("hsm keys takes no arguments, got %q", pos)
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	c.logger(cfg, false)
	var b hsm.Backend
	if *root {
		if cfg.Keys.RootBackend == "" {
			return usageErrorf("--root: keys.root_backend is not configured")
		}
		b, err = openRootKeys(ctx, e, cfg)
	} else {
		b, err = openKeys(ctx, e, cfg)
	}
	if err != nil {
		return err
	}
	defer b.Close()
	keys, err := b.Keys(ctx)
	if err != nil {
		return &cliError{code: exitUnavailable, msg: "listing keys failed: " + err.Error(), err: err}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(keys)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LABEL\tID\tTYPE\tPROTECTION\tURI")
	for _, k := range keys {
		id := k.ID
		if id == "" {
			id = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Label, id, k.Type, k.Protection.String(), k.URI)
	}
	return tw.Flush()
}
