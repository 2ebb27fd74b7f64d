package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/mica-pki/mica/inventory"
)

// exitTampered is the exit code of 'mica audit verify' when the audit hash
// chain is broken. It is exitRefused (3): the log was refused as evidence.
const exitTampered = exitRefused

// runAuditVerify: mica audit verify. It recomputes the audit log's hash
// chain (inventory.Store.VerifyEvents) and prints how many events it
// checked. An edited, removed or truncated event exits 3 with a message
// naming the first bad event id; a database failure exits 4. It only
// reads: verifying appends no event, so it also works on a copy of a
// database under investigation.
func runAuditVerify(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "audit verify", "")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("audit verify takes no arguments, got %q", pos)
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
	n, err := st.VerifyEvents(ctx)
	if errors.Is(err, inventory.ErrTampered) {
		return &cliError{code: exitTampered, msg: fmt.Sprintf("audit log tampered after %d intact events: %v", n, err)}
	}
	if err != nil {
		return &cliError{code: exitUnavailable, msg: "cannot read the audit log", err: err}
	}
	fmt.Fprintf(e.stdout, "audit hash chain intact: %d events verified\n", n)
	return nil
}
