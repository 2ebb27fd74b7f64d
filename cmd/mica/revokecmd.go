package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/mica-pki/mica/ca"
)

// runCRLGenerate signs fresh CRLs now: after an outage, before a planned
// key ceremony, or from cron where no server runs.
func runCRLGenerate(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "crl generate", "[--issuer ID] [flags]")
	issuer := c.fs.String("issuer", "", "issuer `ID` (default: every issuer with an online key)")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("crl generate takes no arguments, got %q", pos)
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
	if err := g.ca.GenerateCRLs(ctx, *issuer); err != nil {
		return err
	}
	is, err := g.ca.Issuers(ctx)
	if err != nil {
		return err
	}
	for _, iss := range is {
		if *issuer != "" && iss.ID != *issuer {
			continue
		}
		if crl, err := g.ca.CRL(ctx, ca.CRLFileName(iss.ID, 0, false)); err == nil {
			fmt.Fprintf(e.stdout, "crl issuer=%s number=%d entries=%d this_update=%s next_update=%s sha256=%s\n",
				iss.ID, crl.Number, crl.Entries, fmtTime(crl.ThisUpdate), fmtTime(crl.NextUpdate), crl.SHA256)
		}
	}
	return nil
}

// runIncidentRevoke is the key-compromise runbook's command: a dry run by
// default (what would be revoked), everything through ca.IncidentRevoke
// with --confirm. See docs/runbooks/incident-response.md.
func runIncidentRevoke(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "incident revoke", "(--pubkey-sha256 H | --issuer ID | --account URL | --profile P | --serials-file F) --reason R [--confirm] [flags]")
	var ir ca.IncidentRequest
	c.fs.StringVar(&ir.PublicKeySHA256, "pubkey-sha256", "", "hex SHA-256 `H` of the compromised SubjectPublicKeyInfo")
	pubFile := c.fs.String("pubkey-file", "", "PEM `FILE` holding the compromised public key, certificate or CSR (instead of --pubkey-sha256)")
	c.fs.StringVar(&ir.IssuerID, "issuer", "", "every certificate of issuer `ID`")
	c.fs.StringVar(&ir.Requester, "account", "", "every certificate requested by `URL` (ACME account URL, EST or CLI user)")
	c.fs.StringVar(&ir.Profile, "profile", "", "every certificate of profile `P`")
	serialsFile := c.fs.String("serials-file", "", "`FILE` with one serial per line (# comments allowed)")
	c.fs.StringVar(&ir.Reason, "reason", "", "RFC 5280 `REASON` (keyCompromise also blocks the keys)")
	c.fs.BoolVar(&ir.BlockKeys, "block-keys", false, "block the matched public keys whatever the reason")
	confirm := c.fs.Bool("confirm", false, "really revoke (without it, only list what matches)")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("incident revoke takes no arguments, got %q", pos)
	}
	if ir.Reason == "" {
		return usageErrorf("incident revoke needs --reason (e.g. keyCompromise)")
	}
	if _, _, err := ca.ParseRevocationReason(ir.Reason); err != nil {
		return err
	}
	if *pubFile != "" {
		h, err := pubkeyHashFromFile(*pubFile)
		if err != nil {
			return usageErrorf("--pubkey-file %s: %v", *pubFile, err)
		}
		ir.PublicKeySHA256 = h
	}
	if *serialsFile != "" {
		b, err := os.ReadFile(*serialsFile)
		if err != nil {
			return usageErrorf("--serials-file: %v", err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			if line, _, _ := strings.Cut(sc.Text(), "#"); strings.TrimSpace(line) != "" {
				ir.Serials = append(ir.Serials, strings.TrimSpace(line))
			}
		}
		if len(ir.Serials) == 0 {
			return usageErrorf("--serials-file %s lists no serials", *serialsFile)
		}
	}
	if ir.PublicKeySHA256 == "" && ir.IssuerID == "" && ir.Requester == "" && ir.Profile == "" && len(ir.Serials) == 0 {
		return usageErrorf("incident revoke needs a selector: --pubkey-sha256, --pubkey-file, --issuer, --account, --profile or --serials-file")
	}
	ir.Actor, ir.Protocol, ir.Source = actor(), "cli", source()
	cfg, err := c.load()
	if err != nil {
		return err
	}
	g, err := openEngine(ctx, e, cfg, c.logger(cfg, false))
	if err != nil {
		return err
	}
	defer g.Close()
	matched, err := g.ca.IncidentMatches(ctx, ir)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d certificate(s) match\n", len(matched))
	for _, m := range matched {
		fmt.Fprintf(e.stdout, "  issuer=%s serial=%s cn=%s requester=%s profile=%s not_after=%s\n",
			m.IssuerID, displaySerial(m.Serial), m.CommonName, m.Requester, m.Profile, fmtTime(m.NotAfter))
	}
	if !*confirm {
		fmt.Fprintln(e.stdout, "dry run: nothing was revoked; run again with --confirm to revoke them")
		return nil
	}
	res, err := g.ca.IncidentRevoke(ctx, ir)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked %d certificate(s), blocked %d public key(s)\n", len(res.Revoked), len(res.BlockedKeys))
	for _, k := range res.BlockedKeys {
		fmt.Fprintf(e.stdout, "  blocked pubkey_sha256=%s\n", k)
	}
	if len(res.Failed) > 0 {
		for what, why := range res.Failed {
			fmt.Fprintf(e.stderr, "failed: %s: %s\n", what, why)
		}
		return &cliError{code: exitUnavailable, msg: fmt.Sprintf("%d step(s) of the incident failed; run it again (revoked certificates are skipped)", len(res.Failed))}
	}
	return nil
}

// pubkeyHashFromFile reads a PEM public key, certificate or CSR and
// returns the SHA-256 of its SubjectPublicKeyInfo.
func pubkeyHashFromFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", fmt.Errorf("no PEM block")
	}
	spki := blk.Bytes
	switch blk.Type {
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return "", err
		}
		spki = c.RawSubjectPublicKeyInfo
	case "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST":
		c, err := x509.ParseCertificateRequest(blk.Bytes)
		if err != nil {
			return "", err
		}
		spki = c.RawSubjectPublicKeyInfo
	case "PUBLIC KEY":
	default:
		return "", fmt.Errorf("PEM type %q is not a public key, certificate or CSR", blk.Type)
	}
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:]), nil
}

func runKeysBlock(ctx context.Context, e *env, args []string) error {
	return keysBlock(ctx, e, args, true)
}

func runKeysUnblock(ctx context.Context, e *env, args []string) error {
	return keysBlock(ctx, e, args, false)
}

func keysBlock(ctx context.Context, e *env, args []string, block bool) error {
	name := map[bool]string{true: "keys block", false: "keys unblock"}[block]
	c := newFlags(e, name, "SHA256 [--reason TEXT] [flags]")
	reason := c.fs.String("reason", "keyCompromise", "why (recorded with the block)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("%s needs exactly one public key SHA-256 (hex)", name)
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
	if block {
		if err := g.ca.BlockKey(ctx, pos[0], *reason, actor(), "cli", source()); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "blocked %s\n", pos[0])
		return nil
	}
	if err := g.ca.UnblockKey(ctx, pos[0], actor(), "cli", source()); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "unblocked %s\n", pos[0])
	return nil
}
