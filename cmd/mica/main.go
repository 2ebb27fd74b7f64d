// Command mica is MICA's single binary: it initialises a CA, serves it, and
// manages certificates and keys from the command line.
//
// This package only wires the other packages together (config → hsm →
// inventory → ca → front ends → server). Policy, signing and storage rules
// live in those packages; nothing here signs or decides.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// command is one `mica …` subcommand.
type command struct {
	name    string // "cert issue"
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// commands lists every subcommand; `mica help` prints them in this order.
var commands = []command{
	{"init", "create the root and issuing CA keys and certificates in a data directory", runInit},
	{"serve", "run the HTTPS and plain-HTTP listeners", runServe},
	{"dev", "initialise a software-key development CA on first run, then serve it", runDev},
	{"cert issue", "issue a certificate from a CSR (leaf + chain, PEM)", runCertIssue},
	{"cert list", "list certificates in the inventory", runCertList},
	{"cert show", "show one certificate by serial", runCertShow},
	{"cert revoke", "revoke a certificate by serial", runCertRevoke},
	{"crl generate", "sign fresh CRLs now (all issuers, or --issuer ID)", runCRLGenerate},
	{"incident revoke", "select certificates by key, issuer, account, profile or serials; revoke them with --confirm", runIncidentRevoke},
	{"acme eab create", "create an ACME external account binding key for a profile (HMAC key shown once)", runACMEEABCreate},
	{"est token create", "create a one-time EST enrollment token (USER:PASSWORD shown once, last line)", runESTTokenCreate},
	{"est pending", "list EST enrollments held for approval", runESTPending},
	{"est approve", "approve a held EST enrollment; the device's retry picks up the certificate", runESTApprove},
	{"est reject", "reject a held EST enrollment", runESTReject},
	{"keys block", "block a public key (SHA-256 of its SPKI) from any future issuance", runKeysBlock},
	{"keys unblock", "remove a public key from the blocklist", runKeysUnblock},
	{"keys list", "list the key inventory: class, status, usage counts, protection, rotation due", runKeysList},
	{"keys retire", "take a key out of service: it can no longer sign", runKeysRetire},
	{"keys destroy", "delete a retired key's private key from its backend (keeps public key and certificates)", runKeysDestroy},
	{"ca show", "show the CA chain, fingerprints, key URIs and key protection", runCAShow},
	{"ca root", "print the root certificate (PEM)", runCARoot},
	{"ca rotate", "create a new issuing CA key and certificate (--csr-out for an offline root)", runCARotate},
	{"ca sign-intermediate", "on the offline root's machine: sign a CSR from 'ca rotate --csr-out'", runCASignIntermediate},
	{"ca import", "import the issuing CA certificate the offline root signed", runCAImport},
	{"ca import-crl", "store a root CRL the offline root signed ('ca sign-intermediate --crl-out')", runCAImportCRL},
	{"user create", "create a web UI user with a role (password from a file, env or stdin)", runUserCreate},
	{"user add", "same as 'user create' (NAME --role R --password-file F, for scripts)", runUserCreate},
	{"token create", "create an admin API bearer token for a role (shown once, last line)", runTokenCreate},
	{"discover scan", "scan TLS endpoints (allow-listed) and record the certificates they present", runDiscoverScan},
	{"discover files", "import certificates from PEM, DER and PKCS#12 files and directories", runDiscoverFiles},
	{"agent", "report certificates found in local paths to MICA over mutual TLS", runAgent},
	{"hsm keys", "list the keys held by the key backend", runHSMKeys},
	{"backup create", "write an age-encrypted backup: database snapshot, configuration, software keys", runBackupCreate},
	{"backup verify", "restore a backup into a scratch directory and prove it works (signatures, audit chain, issuance, OCSP)", runBackupVerify},
	{"restore", "restore a backup into a new data directory (--data DIR)", runRestore},
	{"audit verify", "recompute the audit log hash chain; exit 3 naming the first edited or removed event", runAuditVerify},
	{"report compliance", "key-management compliance report (ISO/IEC 27002 8.24, NIST SP 800-57): markdown, json or html", runReportKeys},
	{"report keys", "same as 'report compliance'", runReportKeys},
	{"config show", "print the effective configuration (never contains secrets)", runConfigShow},
	{"version", "print the version", runVersion},
	{"help", "print this help", nil},
}

// env is what a command runs with: its output streams, and the process
// arguments for the secret-in-argv check.
type env struct {
	stdout, stderr io.Writer
	argv           []string
	getenv         func(string) string
	// dev is set by `mica dev`: a throw-away CA on a laptop, where
	// production nags (backup overdue) are noise.
	dev bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, &env{stdout: os.Stdout, stderr: os.Stderr, argv: os.Args, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run dispatches args and turns the command's error into a message and an
// exit code (errors.go). It never panics on user input.
func run(ctx context.Context, e *env, args []string) int {
	if err := checkArgvSecrets(e.argv); err != nil {
		return report(e, err, false)
	}
	if len(args) == 0 {
		printHelp(e.stderr)
		return report(e, usageErrorf("no command given"), false)
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		printHelp(e.stdout)
		return exitOK
	case "-version", "--version":
		args = []string{"version"}
	}
	global, args, err := globalFlags(args)
	if err != nil {
		return report(e, err, false)
	}
	if len(args) == 0 {
		return report(e, usageErrorf("no command given after %s; see 'mica help'", strings.Join(global, " ")), false)
	}
	cmd, rest, ok := lookup(args)
	if !ok {
		return report(e, usageErrorf("unknown command %q; see 'mica help'", strings.Join(args[:min(2, len(args))], " ")), false)
	}
	rest = append(global, rest...)
	err = cmd.run(ctx, e, rest)
	return report(e, err, debugRequested(rest))
}

// globalFlags takes the flags every command accepts (--data, --config,
// --debug; see newFlags) off the front of args, so `mica --data X cert
// list` works like `mica cert list --data X`. Any other flag before the
// command is an error that says where it goes.
func globalFlags(args []string) (global, rest []string, err error) {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		a := args[0]
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case name == "debug":
			global, args = append(global, a), args[1:]
		case (name == "data" || name == "config") && hasValue:
			global, args = append(global, a), args[1:]
		case name == "data" || name == "config":
			if len(args) < 2 {
				return nil, nil, usageErrorf("%s needs a value", a)
			}
			global, args = append(global, a, args[1]), args[2:]
		default:
			return nil, nil, usageErrorf("%s goes after the command: mica COMMAND [flags] (only --data, --config and --debug may come first); see 'mica help'", a)
		}
	}
	return global, args, nil
}

// lookup finds the longest command name that prefixes args.
func lookup(args []string) (command, []string, bool) {
	for _, n := range []int{3, 2, 1} {
		if len(args) < n {
			continue
		}
		name := strings.Join(args[:n], " ")
		for _, c := range commands {
			if c.name == name && c.run != nil {
				return c, args[n:], true
			}
		}
	}
	return command{}, nil, false
}

// debugRequested reports whether --debug was passed, so that errors from
// flag parsing onwards are shown in full.
func debugRequested(args []string) bool {
	for _, a := range args {
		if a == "--debug" || a == "-debug" || a == "--debug=true" || a == "-debug=true" {
			return true
		}
	}
	return false
}

const helpText = `mica — HSM-rooted certificate authority for machine identities

Usage: mica COMMAND [flags]

Commands:
%s
Flags every command takes:
  --data DIR      data directory holding mica.yaml (default ./mica-data)
  --config FILE   configuration file (default DIR/mica.yaml)
  --debug         debug logging, and full error details on failure

Run 'mica COMMAND -h' for the flags of one command.

PINs and passphrases are never command-line arguments: give them in a file
(--secret-file, keys.secret_file) or an environment variable (--secret-env,
keys.secret_env). mica refuses to run if one appears in its arguments.

Exit codes:
  0  success
  1  internal or unexpected error
  2  usage: unknown command, bad or missing flag or argument
  3  refused: bad CSR, weak key, name or lifetime outside the profile,
     unknown profile, lint failure, bad or repeated revocation
  4  unavailable: wrong PIN or passphrase, key backend or database unreachable
  5  not found: no such certificate or issuer
  6  configuration: invalid mica.yaml, not initialised, already initialised
`

func printHelp(w io.Writer) {
	var b strings.Builder
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintf(w, helpText, b.String())
}

// secretFlagNames are flags a user might try for a secret. mica has none of
// them; catching them here gives a useful message instead of "flag provided
// but not defined", and before anything else runs.
var secretFlagNames = []string{"pin", "passphrase", "password", "so-pin", "user-pin", "pin-value", "secret"}

// checkArgvSecrets refuses argv that carries a PIN or passphrase: a flag
// named like one, or a pkcs11 URI with pin-value. The message never repeats
// the offending argument.
func checkArgvSecrets(argv []string) error {
	for _, a := range argv {
		if strings.Contains(strings.ToLower(a), "pin-value=") {
			return secretInArgvError()
		}
		name, isFlag := strings.CutPrefix(a, "-")
		if !isFlag {
			continue
		}
		name = strings.TrimPrefix(name, "-")
		name, _, _ = strings.Cut(name, "=")
		for _, s := range secretFlagNames {
			if strings.EqualFold(name, s) {
				return secretInArgvError()
			}
		}
	}
	return nil
}

func secretInArgvError() error {
	return &cliError{code: exitUsage, msg: "a PIN or passphrase must never be a command-line argument " +
		"(other users can read it in the process list and it stays in shell history); " +
		"put it in a file and pass --secret-file FILE, or in an environment variable and pass --secret-env VAR"}
}

// checkSecretNotInArgv is the second half of the argv check, run once a
// secret is loaded: its value must not also have been typed as an argument.
func checkSecretNotInArgv(argv []string, secret []byte) error {
	if len(secret) == 0 {
		return nil
	}
	s := string(secret)
	for _, a := range argv {
		if a == s || strings.HasSuffix(a, "="+s) {
			return secretInArgvError()
		}
	}
	return nil
}

var errHelp = errors.New("help requested")
