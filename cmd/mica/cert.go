package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/inventory"
)

// maxCSRFile bounds what `cert issue` reads: a CSR is a few KB.
const maxCSRFile = 1 << 20

func runCertIssue(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "cert issue", "--csr FILE --profile NAME [flags]")
	csrPath := c.fs.String("csr", "", "PKCS#10 request `FILE`, PEM or DER (- for stdin)")
	profile := c.fs.String("profile", "", "issuance profile `NAME` (see 'mica config show')")
	out := c.fs.String("out", "", "write leaf + chain (PEM) to `FILE`, atomically, instead of stdout")
	notAfter := c.fs.String("not-after", "", "expiry `TIME` (RFC 3339), within the profile's cap")
	lifetime := c.fs.String("lifetime", "", "validity `D` from now (e.g. 30d, 36h), within the profile's cap")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("cert issue takes no arguments, got %q", pos)
	}
	if *csrPath == "" || *profile == "" {
		return usageErrorf("cert issue needs --csr FILE and --profile NAME")
	}
	if *notAfter != "" && *lifetime != "" {
		return usageErrorf("give either --not-after or --lifetime, not both")
	}
	req := ca.Request{Profile: *profile, Requester: actor(), Protocol: "cli", Source: source()}
	if *notAfter != "" {
		t, err := time.Parse(time.RFC3339, *notAfter)
		if err != nil {
			return usageErrorf("--not-after %q is not an RFC 3339 time (e.g. 2027-01-02T15:04:05Z)", *notAfter)
		}
		req.NotAfter = t
	}
	var life time.Duration
	if *lifetime != "" {
		d, err := config.ParseDuration(*lifetime)
		if err != nil || d <= 0 {
			return usageErrorf("--lifetime: %v", errOr(err, "must be positive"))
		}
		life = d
	}
	csr, err := readCSR(e, *csrPath)
	if err != nil {
		return err
	}
	req.CSR = csr

	cfg, err := c.load()
	if err != nil {
		return err
	}
	g, err := openEngine(ctx, e, cfg, c.logger(cfg, false))
	if err != nil {
		return err
	}
	defer g.Close()
	if life > 0 {
		// The lifetime is the whole validity period, which ca starts at
		// the profile's backdate (clock-skew allowance) before its own
		// "now". Measuring from our earlier "now" keeps the period at or
		// just under the lifetime asked for, never over a cap equal to it.
		nb := time.Now().UTC().Truncate(time.Second)
		if p, ok := g.ca.Profile(*profile); ok {
			nb = nb.Add(-p.Backdate)
		}
		req.NotAfter = nb.Add(life)
	}
	iss, err := g.ca.Issue(ctx, req)
	if err != nil {
		return err
	}
	// Issue returned: the certificate is committed. Only now does it reach
	// the caller, and a file appears whole or not at all.
	pemOut := iss.PEM()
	if *out != "" {
		if err := config.WriteFileAtomic(*out, pemOut, 0o644); err != nil {
			return fmt.Errorf("certificate %s was issued but writing %s failed (get it with 'mica cert show %s --pem'): %w",
				displaySerial(iss.Record.Serial), *out, displaySerial(iss.Record.Serial), err)
		}
	} else if _, err := e.stdout.Write(pemOut); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "issued serial=%s profile=%s subject=%q not_after=%s\n",
		displaySerial(iss.Record.Serial), iss.Record.Profile, iss.Certificate.Subject.String(), fmtTime(iss.Certificate.NotAfter))
	return nil
}

func errOr(err error, msg string) string {
	if err != nil {
		return err.Error()
	}
	return msg
}

// readCSR reads the request file. Parsing is ca's job (it names what is
// wrong); here only "cannot read" and "too big" are decided.
func readCSR(e *env, path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, usageErrorf("cannot read --csr: %v", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxCSRFile+1))
	if err != nil {
		return nil, usageErrorf("cannot read --csr: %v", err)
	}
	if len(b) > maxCSRFile {
		return nil, &cliError{code: exitRefused, msg: fmt.Sprintf("bad CSR: %s is larger than %d bytes", path, maxCSRFile)}
	}
	return b, nil
}

// openStoreOnly opens just the inventory: reading certificates needs no
// key and no secret.
func openStoreOnly(ctx context.Context, c *common) (*inventory.Store, error) {
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	c.logger(cfg, false)
	return openStore(ctx, cfg)
}

var knownStates = []inventory.State{inventory.StateRequested, inventory.StateIssued, inventory.StateRevoked,
	inventory.StateSuperseded, inventory.StateFailed, inventory.StateExpired}

func parseStates(s string) ([]inventory.State, error) {
	if s == "" {
		return nil, nil
	}
	var out []inventory.State
	for _, p := range strings.Split(s, ",") {
		st := inventory.State(strings.ToLower(strings.TrimSpace(p)))
		ok := false
		for _, k := range knownStates {
			ok = ok || k == st
		}
		if !ok {
			return nil, usageErrorf("--state %q: want one or more of requested, issued, revoked, superseded, failed, expired", p)
		}
		out = append(out, st)
	}
	return out, nil
}

// certView is the JSON shape of `cert list --json` and `cert show --json`:
// the record with its derived state and openssl-style serials.
type certView struct {
	inventory.Certificate
	Serial       string          `json:"serial"`
	Predecessor  string          `json:"predecessor,omitempty"`
	SupersededBy string          `json:"superseded_by,omitempty"`
	State        inventory.State `json:"state"`
}

func viewOf(c inventory.Certificate, now time.Time) certView {
	return certView{Certificate: c, Serial: displaySerial(c.Serial), Predecessor: displayOptionalSerial(c.Predecessor),
		SupersededBy: displayOptionalSerial(c.SupersededBy), State: c.EffectiveState(now)}
}

func runCertList(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "cert list", "[flags]")
	state := c.fs.String("state", "", "only certificates in `STATES` (comma-separated: requested, issued, revoked, superseded, failed, expired)")
	profile := c.fs.String("profile", "", "only certificates of profile `NAME`")
	issuer := c.fs.String("issuer", "", "only certificates of issuer `ID`")
	text := c.fs.String("q", "", "only certificates whose name, subject, SAN, serial or fingerprint contains `TEXT`")
	limit := c.fs.Int("limit", 100, "at most `N` certificates, newest first (max 1000)")
	asJSON := c.fs.Bool("json", false, "print JSON")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("cert list takes no arguments, got %q", pos)
	}
	states, err := parseStates(*state)
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return usageErrorf("--limit must be between 1 and 1000")
	}
	st, err := openStoreOnly(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now()
	certs, err := st.FindCertificates(ctx, inventory.CertFilter{
		IssuerID: *issuer, Text: *text, States: states, Profile: *profile, Now: now, Limit: *limit,
	})
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	if *asJSON {
		views := make([]certView, 0, len(certs))
		for _, ct := range certs {
			views = append(views, viewOf(ct, now))
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tSTATE\tPROFILE\tNOT AFTER\tSUBJECT\tNAMES")
	for _, ct := range certs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", displaySerial(ct.Serial), ct.EffectiveState(now), ct.Profile,
			fmtTime(ct.NotAfter), ct.Subject, strings.Join(ct.SANs, ","))
	}
	return tw.Flush()
}

// findBySerial resolves a typed serial (any case, colons) to one record.
func findBySerial(ctx context.Context, st *inventory.Store, issuer, typed string) (*inventory.Certificate, error) {
	serial, err := inventory.NormalizeSerial(typed)
	if err != nil {
		return nil, usageErrorf("%q is not a serial number (hex, as openssl prints it; case and colons are ignored)", typed)
	}
	if issuer != "" {
		ct, err := st.Certificate(ctx, issuer, serial)
		if err != nil {
			return nil, notFoundOr(err, typed)
		}
		return ct, nil
	}
	certs, err := st.FindCertificates(ctx, inventory.CertFilter{Serial: serial, Limit: 2})
	if err != nil {
		return nil, withCode(exitUnavailable, err)
	}
	switch len(certs) {
	case 0:
		return nil, &cliError{code: exitNotFound, msg: fmt.Sprintf("no certificate with serial %s", displaySerial(serial))}
	case 1:
		return &certs[0], nil
	}
	return nil, usageErrorf("serial %s exists under several issuers; pick one with --issuer", displaySerial(serial))
}

func notFoundOr(err error, typed string) error {
	if errors.Is(err, inventory.ErrNotFound) {
		return &cliError{code: exitNotFound, msg: "no certificate with serial " + typed, err: err}
	}
	return withCode(exitUnavailable, err)
}

func runCertShow(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "cert show", "SERIAL [flags]")
	issuer := c.fs.String("issuer", "", "issuer `ID`, when a serial exists under several")
	asPEM := c.fs.Bool("pem", false, "print the certificate PEM only")
	asJSON := c.fs.Bool("json", false, "print JSON")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("cert show needs exactly one SERIAL")
	}
	st, err := openStoreOnly(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	ct, err := findBySerial(ctx, st, *issuer, pos[0])
	if err != nil {
		return err
	}
	switch {
	case *asPEM:
		if len(ct.DER) == 0 {
			return &cliError{code: exitNotFound, msg: fmt.Sprintf("certificate %s was never issued (state %s): there is no PEM", displaySerial(ct.Serial), ct.State)}
		}
		_, err := e.stdout.Write(encodeDER(ct.DER))
		return err
	case *asJSON:
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(viewOf(*ct, time.Now()))
	}
	printCert(e.stdout, ct, time.Now())
	return nil
}

func runCertRevoke(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "cert revoke", "SERIAL --reason REASON [flags]")
	reason := c.fs.String("reason", "", "RFC 5280 `REASON`: unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, aACompromise")
	issuer := c.fs.String("issuer", "", "issuer `ID`, when a serial exists under several")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("cert revoke needs exactly one SERIAL")
	}
	if *reason == "" {
		return usageErrorf("cert revoke needs --reason (e.g. keyCompromise, superseded, cessationOfOperation)")
	}
	if _, _, err := ca.ParseRevocationReason(*reason); err != nil {
		return err
	}
	if _, err := inventory.NormalizeSerial(pos[0]); err != nil {
		return usageErrorf("%q is not a serial number (hex, as openssl prints it; case and colons are ignored)", pos[0])
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	g, err := openEngine(ctx, e, cfg, c.logger(cfg, false))
	if err != nil {
		return err
	}
	defer g.Close()
	rec, err := g.ca.Revoke(ctx, ca.RevokeRequest{
		IssuerID: *issuer, Serial: pos[0], Reason: *reason, Actor: actor(), Protocol: "cli", Source: source(),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked serial=%s issuer=%s reason=%s at=%s\n",
		displaySerial(rec.Serial), rec.IssuerID, rec.RevocationReason, fmtTime(deref(rec.RevokedAt)))
	// Revoke already re-signed the OCSP response. The CRL is re-signed
	// here too: the store is shared, so a running server serves it at once,
	// and with no server running the next one finds it current.
	if err := g.ca.GenerateCRLs(ctx, rec.IssuerID); err != nil {
		fmt.Fprintf(e.stderr, "warning: the revocation is recorded but the CRL was not re-signed (%s); a running server or 'mica crl generate' will do it\n", ca.UserMessage(err))
	}
	return nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// absPath is used in messages so a relative --out is unambiguous.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
