package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// runReportKeys evaluates the live key-management state against ISO/IEC
// 27002 8.24 and NIST SP 800-57 (ca.Compliance) and writes the report as
// Markdown or JSON. Running it is audited. It needs no working CA: the
// report must work when the keys are offline or retired.
func runReportKeys(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "report keys", "[--format md|json]")
	format := c.fs.String("format", "md", "output `FORMAT`: md or json")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("report keys takes no arguments, got %q", pos)
	}
	if *format != "md" && *format != "json" {
		return usageErrorf("--format must be md or json, got %q", *format)
	}
	st, cfg, err := syncedStore(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	in := ca.ComplianceInput{Now: time.Now(), Profiles: cfg.Profiles, Warning: cfg.KeyPolicy.Warning(), BackupMax: cfg.KeyPolicy.Backup.MaxVerifiedAge()}
	if in.Keys, err = st.Keys(ctx); err != nil {
		return err
	}
	if in.Issuers, err = st.Issuers(ctx); err != nil {
		return err
	}
	in.AuditCount, in.AuditErr = st.VerifyEvents(ctx)
	if in.AuditErr != nil && !errors.Is(in.AuditErr, inventory.ErrTampered) {
		return in.AuditErr
	}
	if in.LastBackup, err = lastEvent(ctx, st, "backup.verify"); err != nil {
		return err
	}
	checks := ca.Compliance(in)
	counts := map[string]int{}
	for _, ch := range checks {
		counts[ch.Result]++
	}
	details, _ := json.Marshal(counts)
	if _, err := st.AppendEvent(ctx, inventory.Event{Actor: actor(), Action: "report.compliance", Protocol: "cli", Source: source(),
		Object: "report:keys", Outcome: "ok", Details: details}); err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"generated": in.Now.UTC(), "summary": counts, "checks": checks})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# MICA key-management compliance report\n\nGenerated %s — %d pass, %d warn, %d fail.\n\n",
		in.Now.UTC().Format(time.RFC3339), counts[ca.CheckPass], counts[ca.CheckWarn], counts[ca.CheckFail])
	b.WriteString("| check | result | controls | evidence |\n|---|---|---|---|\n")
	for _, ch := range checks {
		fmt.Fprintf(&b, "| %s | **%s** | %s | %s |\n", ch.Title, strings.ToUpper(ch.Result),
			strings.Join(ch.Controls, "; "), strings.ReplaceAll(strings.Join(ch.Evidence, "; "), "|", "\\|"))
	}
	_, err = fmt.Fprint(e.stdout, b.String())
	return err
}
