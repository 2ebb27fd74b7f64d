package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// runCARotate replaces the active issuing CA: a new key in the same
// backend, signed by the root when the root key is online, or a CSR for
// the offline root (--csr-out).
func runCARotate(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "ca rotate", "[--at TIME] [--id ID] [--csr-out FILE]")
	at := c.fs.String("at", "", "switch new issuance to the new CA at `TIME` (RFC 3339; default now)")
	id := c.fs.String("id", "", "issuer `ID` of the new CA (default issuing-YYYYMMDDhhmmss)")
	keyType := c.fs.String("key-type", "", "key `TYPE` of the new CA (default: the current one's)")
	validity := c.fs.String("validity", "", "`DURATION` of the new CA certificate (default 5y)")
	csrOut := c.fs.String("csr-out", "", "offline root: write the new key's CSR to `FILE` for 'mica ca sign-intermediate'")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("ca rotate takes no arguments, got %q", pos)
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	c.logger(cfg, false)
	o := ca.RotateOptions{NewID: *id, URLs: cfg.EffectiveURLs(), Policy: cfg.KeyPolicy.CA(), Who: cliActor()}
	if *at != "" {
		if o.At, err = time.Parse(time.RFC3339, *at); err != nil {
			return usageErrorf("--at %q: want RFC 3339, e.g. 2030-01-02T15:04:05Z", *at)
		}
	}
	if *keyType != "" {
		if o.KeyType, err = hsm.ParseKeyType(*keyType); err != nil {
			return usageErrorf("--key-type: %v", err)
		}
	}
	if *validity != "" {
		if o.Validity, err = config.ParseDuration(*validity); err != nil {
			return usageErrorf("--validity: %v", err)
		}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	raw, err := openKeys(ctx, e, cfg)
	if err != nil {
		return err
	}
	// Metered like every signing path: the root's signature on the new
	// CA is a use of the root key.
	keys, err := meterKeys(ctx, st, raw, cfg, slog.Default())
	if err != nil {
		raw.Close()
		return err
	}
	defer keys.Close()
	o.Store, o.Keys = st, keys

	if *csrOut != "" {
		csr, k, err := ca.PrepareRotation(ctx, o)
		if err != nil {
			return err
		}
		if err := config.WriteFileAtomic(*csrOut, csr, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "new issuing key %s created (%s, pending); CSR written to %s\n"+
			"next: on the offline root's machine run 'mica ca sign-intermediate --csr %s --out FILE …', then 'mica ca import FILE' here\n",
			k.ID, k.Algorithm, *csrOut, *csrOut)
		return nil
	}
	rootSigner, closeRoot, err := onlineRootSigner(ctx, e, cfg, st, keys)
	if err != nil {
		return err
	}
	defer closeRoot()
	o.RootSigner = rootSigner
	res, err := ca.Rotate(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "issuing CA %s created, signed by %s; new issuance switches to it at %s\n",
		res.Issuer.ID, res.Issuer.ParentID, res.Cert.NotBefore.UTC().Format(time.RFC3339))
	return nil
}

// onlineRootSigner opens the root key when the store records it as online
// (init without --offline-root), in keys.root_backend if configured.
func onlineRootSigner(ctx context.Context, e *env, cfg *config.Config, st *inventory.Store, keys hsm.Backend) (crypto.Signer, func(), error) {
	issuers, err := st.Issuers(ctx)
	if err != nil {
		return nil, nil, err
	}
	var root *inventory.Issuer
	for i := range issuers {
		if issuers[i].IsRoot && issuers[i].Status == ca.StatusActive && (root == nil || issuers[i].NotBefore.After(root.NotBefore)) {
			root = &issuers[i]
		}
	}
	if root == nil || root.KeyURI == "" {
		return nil, nil, &cliError{code: exitConfig, msg: "the root key is offline: run 'mica ca rotate --csr-out FILE', sign it with " +
			"'mica ca sign-intermediate' on the root's machine, then 'mica ca import FILE'"}
	}
	b, closeFn := keys, func() {}
	if cfg.Keys.RootBackend != "" {
		rb, err := openRootKeys(ctx, e, cfg)
		if err != nil {
			return nil, nil, err
		}
		if b, err = meterKeys(ctx, st, rb, cfg, slog.Default()); err != nil {
			rb.Close()
			return nil, nil, err
		}
		closeFn = func() { b.Close() }
	}
	s, err := b.Signer(ctx, root.KeyURI)
	if err != nil {
		closeFn()
		return nil, nil, &cliError{code: exitUnavailable, msg: "cannot open the root key " + root.KeyURI, err: err}
	}
	return s, closeFn, nil
}

// runCASignIntermediate runs on the offline root's machine: it signs the
// CSR from 'mica ca rotate --csr-out' with the root key. It needs no data
// directory, only the root backend, its secret, the root certificate and
// the CSR.
func runCASignIntermediate(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "ca sign-intermediate", "--root-backend URI --root-cert FILE (--csr FILE --out FILE | --crl-out FILE) [flags]")
	rootBackend := c.fs.String("root-backend", "", "root key backend `URI` (softkms:dir=/media/offline-root or pkcs11:…)")
	rootKey := c.fs.String("root-key", "", "root key `URI` in that backend (default softkms:name=ROOT-ID)")
	rootCertFile := c.fs.String("root-cert", "", "root certificate `FILE` (PEM)")
	rootID := c.fs.String("root-id", "", "issuer `ID` of the root (default: the root key's name)")
	csrFile := c.fs.String("csr", "", "CSR `FILE` from 'mica ca rotate --csr-out'")
	out := c.fs.String("out", "", "write the signed CA certificate to `FILE` (PEM)")
	secretFile := c.fs.String("secret-file", "", "`FILE` holding the root backend's PIN or passphrase")
	secretEnv := c.fs.String("secret-env", "", "environment `VAR` holding the root backend's PIN or passphrase")
	validity := c.fs.String("validity", "", "`DURATION` of the CA certificate (default 5y)")
	at := c.fs.String("at", "", "start of the certificate (and of issuance with it) `TIME`, RFC 3339 (default now)")
	crlBase := c.fs.String("crl-base", "", "`URL` base of the root's CRL (as urls.crl_base)")
	caIssuersBase := c.fs.String("ca-issuers-base", "", "`URL` base of the root's certificate (as urls.ca_issuers_base)")
	crlOut := c.fs.String("crl-out", "", "also sign a fresh root CRL into `FILE` (DER) for 'mica ca import-crl'")
	crlValidity := c.fs.String("crl-validity", "1y", "`DURATION` of that CRL: until the next ceremony")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("ca sign-intermediate takes no arguments, got %q", pos)
	}
	if *rootBackend == "" || *rootCertFile == "" || (*csrFile == "") != (*out == "") || (*csrFile == "" && *crlOut == "") {
		return usageErrorf("ca sign-intermediate needs --root-backend, --root-cert, and --csr with --out, or --crl-out, or both")
	}
	crlLife, err := config.ParseDuration(*crlValidity)
	if err != nil || crlLife <= 0 {
		return usageErrorf("--crl-validity %q: want a positive duration such as 1y or 90d", *crlValidity)
	}
	certPEM, err := os.ReadFile(*rootCertFile)
	if err != nil {
		return usageErrorf("--root-cert: %v", err)
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return usageErrorf("--root-cert %s holds no PEM certificate", *rootCertFile)
	}
	rootCert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return usageErrorf("--root-cert: %v", err)
	}
	var csr []byte
	if *csrFile != "" {
		if csr, err = os.ReadFile(*csrFile); err != nil {
			return usageErrorf("--csr: %v", err)
		}
	}
	keyURI := *rootKey
	if keyURI == "" {
		if !strings.HasPrefix(*rootBackend, "softkms:") || *rootID == "" {
			return usageErrorf("give --root-key URI (or --root-id with a softkms backend)")
		}
		keyURI = "softkms:name=" + *rootID
	}
	if *rootID == "" {
		_, name, _ := strings.Cut(keyURI, "name=")
		*rootID, _, _ = strings.Cut(name, ";")
	}
	opts := ca.IntermediateOptions{RootID: *rootID, URLs: ca.URLs{CRLBase: *crlBase, CAIssuersBase: *caIssuersBase}}
	if *validity != "" {
		if opts.Validity, err = config.ParseDuration(*validity); err != nil {
			return usageErrorf("--validity: %v", err)
		}
	}
	if *at != "" {
		start, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return usageErrorf("--at %q: want RFC 3339", *at)
		}
		// SignIntermediate backdates by an hour for clock skew; the
		// requested time is when issuance switches.
		opts.Now = func() time.Time { return start.Add(time.Hour) }
	}
	secret, err := checkedSecret(e, func() (hsm.Secret, error) { return hsm.LoadSecret(*secretFile, *secretEnv) }, "--secret-file/--secret-env")
	if err != nil {
		return err
	}
	b, err := openBackend(ctx, *rootBackend, secret, "root key backend")
	if err != nil {
		return err
	}
	defer b.Close()
	signer, err := b.Signer(ctx, keyURI)
	if err != nil {
		return &cliError{code: exitUnavailable, msg: "cannot open the root key " + keyURI + ": " + err.Error(), err: err}
	}
	if *crlOut != "" {
		// No store here to draw a CRL number from: the signing time in
		// seconds grows from one ceremony to the next, and is far above
		// the small numbers init's CRL took from the store.
		now := time.Now()
		der, err := ca.SignRootCRL(rootCert, signer, now.Unix(), now, crlLife)
		if err != nil {
			return err
		}
		if err := config.WriteFileAtomic(*crlOut, der, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "signed the CRL of %s (valid until %s); next: 'mica ca import-crl %s' on the online CA\n",
			rootCert.Subject.CommonName, now.Add(crlLife).UTC().Format(time.RFC3339), *crlOut)
	}
	if csr == nil {
		return nil
	}
	cert, err := ca.SignIntermediate(ctx, signer, rootCert, csr, opts)
	if err != nil {
		return err
	}
	if err := config.WriteFileAtomic(*out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "signed %s (serial %s, valid %s to %s); next: 'mica ca import %s' on the online CA\n",
		cert.Subject.CommonName, inventory.FormatSerialNumber(cert.SerialNumber), cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), *out)
	return nil
}

// runCAImport records the certificate the offline root signed and
// activates the pending key it belongs to.
func runCAImport(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "ca import", "FILE")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("ca import takes one certificate FILE")
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return usageErrorf("%v", err)
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	c.logger(cfg, false)
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := openKeys(ctx, e, cfg)
	if err != nil {
		return err
	}
	defer keys.Close()
	res, err := ca.ImportIntermediate(ctx, st, keys, data, time.Now(), cliActor())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "issuing CA %s imported (signed by %s); new issuance switches to it at %s\n",
		res.Issuer.ID, res.Issuer.ParentID, res.Cert.NotBefore.UTC().Format(time.RFC3339))
	return nil
}

// runCAImportCRL stores a CRL the offline root signed in a ceremony
// ('ca sign-intermediate --crl-out'), so /crl/{root}.crl serves it. The
// CRL must verify with an issuer's certificate in the store and be newer
// than the CRL it replaces.
func runCAImportCRL(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "ca import-crl", "FILE")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("ca import-crl takes one CRL FILE (DER or PEM)")
	}
	der, err := os.ReadFile(pos[0])
	if err != nil {
		return usageErrorf("%v", err)
	}
	if blk, _ := pem.Decode(der); blk != nil {
		der = blk.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return usageErrorf("%s is not a CRL: %v", pos[0], err)
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	c.logger(cfg, false)
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	issuers, err := st.Issuers(ctx)
	if err != nil {
		return err
	}
	for _, is := range issuers {
		cert, err := x509.ParseCertificate(is.DER)
		if err != nil || crl.CheckSignatureFrom(cert) != nil {
			continue
		}
		stored, err := ca.ImportCRL(ctx, st, is.ID, cert, der)
		if err != nil {
			return err
		}
		if !stored {
			return &cliError{code: exitConfig, msg: fmt.Sprintf("the CRL of %s is not newer than the one stored (CRL number %s): nothing changed", is.ID, crl.Number)}
		}
		fmt.Fprintf(e.stdout, "CRL of %s stored (number %s, valid until %s)\n", is.ID, crl.Number, crl.NextUpdate.UTC().Format(time.RFC3339))
		return nil
	}
	return &cliError{code: exitConfig, msg: pos[0] + " is not signed by any issuer of this CA"}
}
