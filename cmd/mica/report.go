package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/mica-pki/mica/alerts"
	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/inventory"
)

// runReportKeys evaluates the live key-management state against ISO/IEC
// 27002 8.24 and NIST SP 800-57 (ca.Compliance) and writes the report as
// Markdown, JSON or a self-contained HTML page. Running it is audited. It
// needs no working CA: the report must work when the keys are offline or
// retired.
func runReportKeys(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "report compliance", "[--format markdown|json|html]")
	format := c.fs.String("format", "markdown", "output `FORMAT`: markdown (md), json or html")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("report compliance takes no arguments, got %q", pos)
	}
	switch *format {
	case "md", "markdown", "json", "html":
	default:
		return usageErrorf("--format must be markdown, json or html, got %q", *format)
	}
	st, cfg, err := syncedStore(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := (&complianceReporter{store: st, cfg: cfg}).Compliance(ctx, inventory.Event{Actor: actor(), Protocol: "cli", Source: source()})
	if err != nil {
		return err
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	case "html":
		return writeReportHTML(e.stdout, rep)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# MICA key-management compliance report\n\nGenerated %s — %d pass, %d warn, %d fail.\n\n",
		rep.Generated.Format(time.RFC3339), rep.Summary[ca.CheckPass], rep.Summary[ca.CheckWarn], rep.Summary[ca.CheckFail])
	b.WriteString("| check | result | controls | evidence |\n|---|---|---|---|\n")
	for _, ch := range rep.Checks {
		fmt.Fprintf(&b, "| %s | **%s** | %s | %s |\n", ch.Title, strings.ToUpper(ch.Result),
			strings.Join(ch.Controls, "; "), strings.ReplaceAll(strings.Join(ch.Evidence, "; "), "|", "\\|"))
	}
	_, err = fmt.Fprint(e.stdout, b.String())
	return err
}

// complianceReporter gathers the live state for ca.Compliance and serves
// the web package's Keys and Compliance pages (web.KeyReporter).
type complianceReporter struct {
	store *inventory.Store
	cfg   *config.Config
	now   func() time.Time
}

// Keys lists the key inventory.
func (r *complianceReporter) Keys(ctx context.Context) ([]inventory.Key, error) {
	return r.store.Keys(ctx)
}

// Compliance evaluates the report now and appends ev (who asked) as the
// report.compliance audit event with the result counts.
func (r *complianceReporter) Compliance(ctx context.Context, ev inventory.Event) (*ca.Report, error) {
	in, err := r.gather(ctx)
	if err != nil {
		return nil, err
	}
	rep := ca.NewReport(in)
	ev.Action, ev.Object = "report.compliance", "report:compliance"
	if ev.Outcome == "" {
		ev.Outcome = "ok"
	}
	ev.Details, _ = json.Marshal(rep.Summary)
	if _, err := r.store.AppendEvent(ctx, ev); err != nil {
		return nil, err
	}
	return rep, nil
}

// expiringWindow is how far ahead the report looks for certificates
// whose renewal window has passed.
const expiringWindow = 90 * 24 * time.Hour

// gather reads everything the report evaluates.
func (r *complianceReporter) gather(ctx context.Context) (ca.ComplianceInput, error) {
	now := time.Now()
	if r.now != nil {
		now = r.now()
	}
	st, cfg := r.store, r.cfg
	in := ca.ComplianceInput{Now: now, Profiles: cfg.Profiles, Warning: cfg.KeyPolicy.Warning(), BackupMax: cfg.KeyPolicy.Backup.MaxVerifiedAge(),
		HaveDetailed: true, OCSPMaxAge: cfg.Revocation.OCSPValidity.D(), CRLs: map[string]*inventory.CRL{}}
	var err error
	if in.Keys, err = st.Keys(ctx); err != nil {
		return in, err
	}
	if in.Issuers, err = st.Issuers(ctx); err != nil {
		return in, err
	}
	in.AuditCount, in.AuditErr = st.VerifyEvents(ctx)
	if in.AuditErr != nil && !errors.Is(in.AuditErr, inventory.ErrTampered) {
		return in, in.AuditErr
	}
	if in.LastBackup, err = alerts.LastVerifiedBackup(ctx, st); err != nil {
		return in, err
	}
	users, err := st.Users(ctx)
	if err != nil {
		return in, err
	}
	logins, err := st.LastEventByObject(ctx, "ui.login", "ok")
	if err != nil {
		return in, err
	}
	for _, u := range users {
		in.Users = append(in.Users, ca.UserState{Name: u.Name, Role: u.Role, Disabled: u.DisabledAt != nil, Created: u.CreatedAt, LastLogin: logins["user:"+u.Name]})
	}
	for _, is := range ca.ServingOf(in.Issuers, now) {
		crl, err := st.LatestCRL(ctx, is.ID, 0, false)
		switch {
		case errors.Is(err, inventory.ErrNotFound):
		case err != nil:
			return in, err
		default:
			in.CRLs[is.ID] = crl
		}
		cov, err := st.OCSPCoverage(ctx, is.ID, now)
		if err != nil {
			return in, err
		}
		in.OCSP = append(in.OCSP, cov)
	}
	if in.Discovered, err = st.FindDiscovered(ctx, inventory.DiscoveredFilter{Limit: 1000}); err != nil {
		return in, err
	}
	if in.Expiring, err = st.FindCertificates(ctx, inventory.CertFilter{States: []inventory.State{inventory.StateIssued},
		ExpiresAfter: now, ExpiresBefore: now.Add(expiringWindow), Now: now, Limit: 1000}); err != nil {
		return in, err
	}
	return in, nil
}

// reportPage is the self-contained HTML report: inline CSS, no script,
// nothing fetched.
var reportPage = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MICA compliance report {{.Generated.Format "2006-01-02"}}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;width:100%}th,td{border:1px solid #999;padding:.4em;vertical-align:top;text-align:left}
.pass{color:#0a6b2a}.warn{color:#8a5a00}.fail{color:#a40000}ul{margin:0;padding-left:1.2em}</style></head>
<body><h1>MICA key-management compliance report</h1>
<p id="summary">Generated {{.Generated.Format "2006-01-02T15:04:05Z07:00"}}: {{index .Summary "pass"}} pass, {{index .Summary "warn"}} warn, {{index .Summary "fail"}} fail.
Controls: ISO/IEC 27002:2022 8.24 and related, NIST SP 800-57 Part 1 Rev. 5.</p>
<table><thead><tr><th>Check</th><th>Result</th><th>Evidence</th><th>Controls</th></tr></thead><tbody>
{{range .Checks}}<tr id="check-{{.ID}}"><td>{{.Title}}</td><td class="{{.Result}}"><strong>{{.Result}}</strong></td><td><ul>{{range .Evidence}}<li>{{.}}</li>{{end}}</ul></td><td><ul>{{range .Controls}}<li>{{.}}</li>{{end}}</ul></td></tr>
{{end}}</tbody></table></body></html>
`))

func writeReportHTML(w io.Writer, rep *ca.Report) error { return reportPage.Execute(w, rep) }
