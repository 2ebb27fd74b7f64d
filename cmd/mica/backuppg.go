package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// PostgreSQL in backups: pg_dump paired with the rest of the backup.
//
// A server database is copied by pg_dump, not by mica. To keep the dump
// and the manifest's row counts one consistent picture, backup create
// opens a read-only REPEATABLE READ transaction, exports its snapshot,
// counts the rows in it and has pg_dump dump exactly that snapshot
// (--snapshot). The dump (custom format, the store's schema only, no
// owners or grants) travels inside the age-encrypted archive.
//
// backup verify restores it into a scratch database it creates (and
// drops) on the server named by --scratch-database (default: the backed-up
// configuration's); restore loads it into --database, whose schema must
// be absent or empty. Passwords go to pg_dump/pg_restore in PGPASSWORD,
// never on their command line.

// backupPGDumpName is the dump's name in the archive.
const backupPGDumpName = "mica.pgdump"

// pgTarget is a PostgreSQL DSN taken apart for the libpq tools.
type pgTarget struct {
	dsn      *url.URL // as the store opens it (pgx), search_path included
	libpq    string   // the same server and database for pg_dump/pg_restore, no password, no pgx-only parameters
	password string
	schema   string // search_path, "" when not set
}

// libpqParams are the URL query parameters libpq understands; anything
// else (search_path, pgx pool settings) is for the store only.
var libpqParams = map[string]bool{"sslmode": true, "sslrootcert": true, "sslcert": true, "sslkey": true,
	"connect_timeout": true, "application_name": true, "target_session_attrs": true, "host": true, "port": true}

func parsePGTarget(dsn string) (*pgTarget, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, &cliError{code: exitConfig, msg: "backups of PostgreSQL need the database as a postgres:// URL"}
	}
	t := &pgTarget{dsn: u, schema: u.Query().Get("search_path")}
	l := *u
	if l.User != nil {
		t.password, _ = l.User.Password()
		l.User = url.User(l.User.Username())
	}
	q := url.Values{}
	for k, v := range u.Query() {
		if libpqParams[k] {
			q[k] = v
		}
	}
	l.RawQuery = q.Encode()
	t.libpq = l.String()
	return t, nil
}

// withDatabase returns the target on another database of the same server.
func (t *pgTarget) withDatabase(name, schema string) *pgTarget {
	u := *t.dsn
	u.Path = "/" + name
	q := u.Query()
	if schema != "" {
		q.Set("search_path", schema)
	}
	u.RawQuery = q.Encode()
	out, _ := parsePGTarget(u.String())
	return out
}

// run executes a libpq tool with the password in its environment.
func (t *pgTarget) run(ctx context.Context, tool string, args ...string) error {
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = os.Environ()
	if t.password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+t.password)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if t.password != "" {
			msg = strings.ReplaceAll(msg, t.password, "***")
		}
		return &cliError{code: exitUnavailable, msg: fmt.Sprintf("%s failed: %s", tool, msg), err: err}
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// pgDumpInfo is what pgDump read in the dump's snapshot.
type pgDumpInfo struct {
	Counts     map[string]int64
	Schema     string
	Extensions []string // "name@schema": a schema-only dump leaves them out, the store's indexes need them
}

// pgDump dumps the store's schema into out from one snapshot and returns
// the row counts, the schema and the extensions, all read in that same
// snapshot.
func pgDump(ctx context.Context, dsn, out string) (*pgDumpInfo, error) {
	t, err := parsePGTarget(dsn)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("backup: open the snapshot transaction: %w", err)
	}
	defer tx.Rollback()
	info := &pgDumpInfo{Counts: map[string]int64{}}
	var snap string
	if err := tx.QueryRowContext(ctx, `SELECT pg_export_snapshot(), current_schema()`).Scan(&snap, &info.Schema); err != nil {
		return nil, fmt.Errorf("backup: export the snapshot: %w", err)
	}
	for _, tbl := range inventory.BackupTables {
		var n int64
		// tbl is from a constant list, never from input.
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+tbl).Scan(&n); err != nil {
			return nil, fmt.Errorf("backup: count %s: %w", tbl, err)
		}
		info.Counts[tbl] = n
	}
	rows, err := tx.QueryContext(ctx, `SELECT e.extname || '@' || n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE e.extname <> 'plpgsql' ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("backup: list extensions: %w", err)
	}
	for rows.Next() {
		var x string
		if err := rows.Scan(&x); err != nil {
			rows.Close()
			return nil, err
		}
		info.Extensions = append(info.Extensions, x)
	}
	rows.Close()
	if err := t.run(ctx, "pg_dump", "--format=custom", "--no-owner", "--no-privileges", "--schema="+info.Schema,
		"--snapshot="+snap, "--file="+out, t.libpq); err != nil {
		return nil, err
	}
	return info, nil
}

// pgRestore loads dump into target: the schema must be absent or empty.
// The schema and the extensions the source database had are created
// first, where missing, and the dump's own CREATE SCHEMA is left out of
// the restore: a dump of one schema (pg_dump --schema) never carries the
// extensions, even those installed in that very schema (pg_trgm in
// "public", the usual case), and the store's GIN indexes need pg_trgm's
// operator classes before they can be built. "public" exists in every
// fresh database, so it is kept rather than dropped and recreated.
func pgRestore(ctx context.Context, target *pgTarget, schema string, extensions []string, dump string) error {
	db, err := sql.Open("pgx", target.dsn.String())
	if err != nil {
		return err
	}
	defer db.Close()
	var tables int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1`, schema).Scan(&tables); err != nil {
		return &cliError{code: exitUnavailable, msg: "cannot reach the target database", err: err}
	}
	if tables > 0 {
		return usageErrorf("the target database already has tables in schema %s: restore never overwrites a store", schema)
	}
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+quoteIdent(schema)); err != nil {
		return &cliError{code: exitUnavailable, msg: "cannot prepare schema " + schema + " in the target database", err: err}
	}
	for _, x := range extensions {
		name, in, _ := strings.Cut(x, "@")
		if _, err := db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+quoteIdent(in)); err != nil {
			return &cliError{code: exitUnavailable, msg: "cannot prepare schema " + in + " for extension " + name, err: err}
		}
		if _, err := db.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS `+quoteIdent(name)+` SCHEMA `+quoteIdent(in)); err != nil {
			return &cliError{code: exitUnavailable, msg: "the target database lacks extension " + name + " and it cannot be created", err: err}
		}
	}
	list, err := pgRestoreList(ctx, target, schema, dump)
	if err != nil {
		return err
	}
	defer os.Remove(list)
	return target.run(ctx, "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
		"--use-list="+list, "--dbname="+target.libpq, dump)
}

// pgRestoreList writes the dump's table of contents without the entries
// pgRestore has already taken care of (the schema itself, extensions) and
// returns the file's path, next to the dump.
func pgRestoreList(ctx context.Context, target *pgTarget, schema, dump string) (string, error) {
	cmd := exec.CommandContext(ctx, "pg_restore", "--list", dump)
	out, err := cmd.Output()
	if err != nil {
		return "", &cliError{code: exitUnavailable, msg: "pg_restore cannot read the dump's table of contents", err: err}
	}
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		// "ID; OID OID TYPE NAMESPACE NAME OWNER"; comments start with ";".
		f := strings.Fields(line)
		if len(f) >= 6 && !strings.HasPrefix(line, ";") {
			if (f[3] == "SCHEMA" && f[4] == "-" && strings.Trim(f[5], `"`) == schema) || f[3] == "EXTENSION" ||
				(f[3] == "COMMENT" && f[5] == "EXTENSION") {
				continue
			}
		}
		keep = append(keep, line)
	}
	p := dump + ".list"
	if err := os.WriteFile(p, []byte(strings.Join(keep, "\n")), 0o600); err != nil {
		return "", err
	}
	return p, nil
}

// pgScratch creates a scratch database on the server of admin, restores
// dump into it and returns its DSN and a function that drops it.
func pgScratch(ctx context.Context, admin *pgTarget, schema string, extensions []string, dump string) (string, func(), error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", nil, err
	}
	name := "mica_drill_" + hex.EncodeToString(rnd[:])
	db, err := sql.Open("pgx", admin.dsn.String())
	if err != nil {
		return "", nil, err
	}
	if _, err := db.ExecContext(ctx, `CREATE DATABASE `+quoteIdent(name)); err != nil {
		db.Close()
		return "", nil, &cliError{code: exitUnavailable, msg: "cannot create the scratch database for the drill (--scratch-database)", err: err}
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = db.ExecContext(dctx, `DROP DATABASE IF EXISTS `+quoteIdent(name)+` WITH (FORCE)`)
		db.Close()
	}
	target := admin.withDatabase(name, schema)
	if err := pgRestore(ctx, target, schema, extensions, dump); err != nil {
		drop()
		return "", nil, err
	}
	return target.dsn.String(), drop, nil
}
