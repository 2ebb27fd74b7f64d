package main

import (
	"context"
	"fmt"

	"github.com/mica-pki/mica/inventory"
)

// runTokenCreate: mica token create --role R [--label L]. The bearer token
// is printed once, on the last line of stdout; only its hash is stored.
func runTokenCreate(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "token create", "--role admin|operator|viewer|auditor [--label L]")
	role := c.fs.String("role", "", "`ROLE` of the token: admin, operator, viewer or auditor")
	label := c.fs.String("label", "", "free `TEXT` saying what the token is for")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("token create takes no arguments, got %q", pos)
	}
	if !inventory.ValidRole(*role) {
		return usageErrorf("--role must be admin, operator, viewer or auditor")
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	tok, rec, err := st.CreateAPIToken(ctx, *role, *label, inventory.Event{Actor: actor(), Protocol: "cli", Source: source(), Outcome: "ok"})
	if err != nil {
		return &cliError{code: exitUnavailable, msg: "cannot store the token", err: err}
	}
	fmt.Fprintf(e.stdout, "API token %s (role %s). It is shown only now; only its hash is stored.\n"+
		"Use it as 'Authorization: Bearer TOKEN' on /api/v1/. Token (last line):\n%s\n", rec.ID, rec.Role, tok)
	return nil
}
