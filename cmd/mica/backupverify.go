package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/inventory"
)

// runBackupVerify is the recovery drill: restore into a scratch directory
// and prove the result is a working CA, timing the whole recovery.
func runBackupVerify(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "backup verify", "FILE (--identity FILE | --passphrase-file FILE)")
	identity := c.fs.String("identity", "", "age identity `FILE` (AGE-SECRET-KEY-1…)")
	passFile := c.fs.String("passphrase-file", "", "the backup's passphrase in `FILE`")
	keep := c.fs.Bool("keep", false, "keep the scratch directory and print its path")
	scratchDB := c.fs.String("scratch-database", "", "PostgreSQL backups: `DSN` of a server where the drill may create (and drops) a scratch database; default the backed-up configuration's")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("backup verify takes one backup FILE")
	}
	start := time.Now()
	dir, err := os.MkdirTemp("", "mica-restore-drill-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(e.stdout, "scratch directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	m, err := openBackup(pos[0], *identity, *passFile, dir)
	if err != nil {
		return err
	}
	cfg, err := rebind(dir, m)
	if err != nil {
		return err
	}
	log := c.logger(cfg, false)
	if m.Database == "postgres" {
		admin := *scratchDB
		if admin == "" {
			admin = cfg.Database
		}
		t, err := parsePGTarget(admin)
		if err != nil {
			return err
		}
		dsn, drop, err := pgScratch(ctx, t, m.PGSchema, m.PGExtensions, filepath.Join(dir, backupPGDumpName))
		if err != nil {
			return err
		}
		defer drop()
		cfg.Database = dsn
		fmt.Fprintf(e.stdout, "ok  pg_dump of schema %s restored into a scratch database\n", m.PGSchema)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	rep, err := checkRestoredStore(ctx, st, m)
	st.Close()
	if err != nil {
		return err
	}
	for _, line := range rep {
		fmt.Fprintln(e.stdout, "ok  "+line)
	}

	// The store is sound; now prove the keys are: the restored (or
	// re-bound HSM) issuing key signs a certificate and an OCSP response.
	g, err := openEngine(ctx, e, cfg, log)
	if err != nil {
		return fmt.Errorf("the restored CA cannot be opened: %w", err)
	}
	defer g.Close()
	leaf, err := drillIssue(ctx, g.ca)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "ok  test issuance by %s (serial %s) with the restored key\n", g.ca.IssuerID(), inventory.FormatSerialNumber(leaf.Certificate.SerialNumber))
	req, err := ocsp.CreateRequest(leaf.Certificate, leaf.Chain[0], nil)
	if err != nil {
		return err
	}
	a := g.ca.RespondOCSP(ctx, req)
	if a.Status != "good" {
		return &cliError{code: exitRefused, msg: "the restored CA answered OCSP for its test certificate with " + a.Status}
	}
	if _, err := ocsp.ParseResponseForCert(a.DER, leaf.Certificate, leaf.Chain[0]); err != nil {
		return &cliError{code: exitRefused, msg: "the restored CA's OCSP response does not verify", err: err}
	}
	fmt.Fprintln(e.stdout, "ok  OCSP response signed and verified")
	took := time.Since(start).Round(time.Millisecond)
	fmt.Fprintf(e.stdout, "backup %s verified: recovery took %s\n", pos[0], took)
	if c.isSet("data") || c.config != "" {
		// Record the drill in the live inventory: the compliance report
		// and the server's alert look for the last verified backup.
		return recordVerified(ctx, c, pos[0], m, took)
	}
	return nil
}

// checkRestoredStore proves the restored database: schema, row counts,
// every certificate's signature against its issuer, the audit chain.
func checkRestoredStore(ctx context.Context, st *inventory.Store, m *manifest) ([]string, error) {
	var rep []string
	bad := func(format string, a ...any) error {
		return &cliError{code: exitRefused, msg: "restore drill failed: " + fmt.Sprintf(format, a...)}
	}
	v, err := st.SchemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	if v < m.SchemaVersion {
		return nil, bad("schema version %d, the backup recorded %d", v, m.SchemaVersion)
	}
	rep = append(rep, fmt.Sprintf("schema version %d", v))
	counts, err := st.TableCounts(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range slices.Sorted(maps.Keys(m.Counts)) {
		if counts[t] != m.Counts[t] {
			return nil, bad("table %s has %d rows, the backup recorded %d", t, counts[t], m.Counts[t])
		}
	}
	rep = append(rep, fmt.Sprintf("row counts match: %v", m.Counts))
	issuers, err := st.Issuers(ctx)
	if err != nil {
		return nil, err
	}
	certs := map[string]*x509.Certificate{}
	for _, is := range issuers {
		c, err := x509.ParseCertificate(is.DER)
		if err != nil {
			return nil, bad("issuer %s: %v", is.ID, err)
		}
		certs[is.ID] = c
	}
	for _, is := range issuers {
		parent := certs[is.ParentID]
		if is.IsRoot {
			parent = certs[is.ID]
		}
		if parent == nil || certs[is.ID].CheckSignatureFrom(parent) != nil {
			return nil, bad("issuer %s is not signed by %s", is.ID, is.ParentID)
		}
	}
	n := 0
	err = st.CertificateDER(ctx, func(issuerID string, der []byte) error {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return bad("a certificate of %s does not parse: %v", issuerID, err)
		}
		is := certs[issuerID]
		if is == nil || c.CheckSignatureFrom(is) != nil {
			return bad("certificate %s is not signed by issuer %s", inventory.FormatSerialNumber(c.SerialNumber), issuerID)
		}
		n++
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep = append(rep, fmt.Sprintf("%d issuer and %d certificate signatures verified", len(issuers), n))
	ev, err := st.VerifyEvents(ctx)
	if err != nil {
		if errors.Is(err, inventory.ErrTampered) {
			return nil, bad("audit chain: %v", err)
		}
		return nil, err
	}
	rep = append(rep, fmt.Sprintf("audit hash chain intact (%d events)", ev))
	return rep, nil
}

// drillIssue issues a throw-away certificate in the scratch copy.
func drillIssue(ctx context.Context, c *ca.CA) (*ca.Issued, error) {
	profile := "server"
	if _, ok := c.Profile(profile); !ok {
		profile = c.ProfileNames()[0]
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "restore-drill.test"}, DNSNames: []string{"restore-drill.test"}}, key)
	if err != nil {
		return nil, err
	}
	return c.Issue(ctx, ca.Request{CSR: csr, Profile: profile, Requester: actor(), Protocol: "cli", Source: source()})
}

// runRestore restores a backup into a new data directory for real. The
// store is checked as in the drill; no test certificate is issued into it.
func runRestore(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "restore", "FILE --data DIR (--identity FILE | --passphrase-file FILE)")
	identity := c.fs.String("identity", "", "age identity `FILE` (AGE-SECRET-KEY-1…)")
	passFile := c.fs.String("passphrase-file", "", "the backup's passphrase in `FILE`")
	database := c.fs.String("database", "", "PostgreSQL backups: the `DSN` to restore the inventory into (its schema must be absent or empty)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("restore takes one backup FILE")
	}
	if !c.isSet("data") {
		return usageErrorf("restore needs --data DIR (a new or empty directory)")
	}
	start := time.Now()
	dir, err := filepath.Abs(c.data)
	if err != nil {
		return err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return usageErrorf("--data %s is not empty: restore never overwrites a data directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// A restore that fails leaves the directory empty again, so it can be
	// retried there.
	restored := false
	defer func() {
		if restored {
			return
		}
		ents, _ := os.ReadDir(dir)
		for _, ent := range ents {
			_ = os.RemoveAll(filepath.Join(dir, ent.Name()))
		}
	}()
	m, err := openBackup(pos[0], *identity, *passFile, dir)
	if err != nil {
		return err
	}
	cfg, err := rebind(dir, m)
	if err != nil {
		return err
	}
	c.logger(cfg, false)
	switch {
	case m.Database == "postgres" && *database == "":
		return usageErrorf("this backup holds a PostgreSQL inventory: give --database DSN to restore it into")
	case m.Database == "postgres":
		t, err := parsePGTarget(*database)
		if err != nil {
			return err
		}
		t = t.withDatabase(strings.TrimPrefix(t.dsn.Path, "/"), m.PGSchema)
		dump := filepath.Join(dir, backupPGDumpName)
		if err := pgRestore(ctx, t, m.PGSchema, m.PGExtensions, dump); err != nil {
			return err
		}
		_ = os.Remove(dump)
		cfg.Database = t.dsn.String()
		if err := cfg.Write(filepath.Join(dir, config.FileName)); err != nil {
			return err
		}
	case *database != "":
		return usageErrorf("--database is for PostgreSQL backups; this one holds a SQLite inventory")
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := checkRestoredStore(ctx, st, m)
	if err != nil {
		return err
	}
	for _, line := range rep {
		fmt.Fprintln(e.stdout, "ok  "+line)
	}
	for _, k := range m.HSMKeys {
		fmt.Fprintf(e.stdout, "HSM key %s must be present on its token: %s (SPKI SHA-256 %s)\n", k.ID, k.URI, k.SPKISHA256)
	}
	if _, err := st.AppendEvent(ctx, inventory.Event{Actor: actor(), Action: "backup.restore", Protocol: "cli", Source: source(),
		Object: "backup:" + filepath.Base(pos[0]), Outcome: "ok"}); err != nil {
		return err
	}
	restored = true
	fmt.Fprintf(e.stdout, "restored into %s in %s; start it with 'mica serve --data %s'\n", dir, time.Since(start).Round(time.Millisecond), dir)
	return nil
}

// recordVerified appends a backup.verify event to the live CA's store.
func recordVerified(ctx context.Context, c *common, file string, m *manifest, took time.Duration) error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	details, _ := json.Marshal(map[string]any{"file": file, "created": m.Created, "recovery_ms": took.Milliseconds(), "counts": m.Counts})
	_, err = st.AppendEvent(ctx, inventory.Event{Actor: actor(), Action: "backup.verify", Protocol: "cli", Source: source(),
		Object: "backup:" + filepath.Base(file), Outcome: "ok", Details: details})
	return err
}
