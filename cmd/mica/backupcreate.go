package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/inventory"
)

// runBackupCreate writes an encrypted backup of a data directory.
func runBackupCreate(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "backup create", "--out FILE (--recipient AGE-PUBKEY… | --passphrase-file FILE)")
	out := c.fs.String("out", "", "write the backup to `FILE`")
	var recips stringList
	c.fs.Var(&recips, "recipient", "age X25519 `PUBKEY` (age1…) to encrypt to; repeatable")
	passFile := c.fs.String("passphrase-file", "", "encrypt with the passphrase in `FILE` (scrypt) instead")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("backup create takes no arguments, got %q", pos)
	}
	if *out == "" {
		return usageErrorf("backup create needs --out FILE")
	}
	recipients, err := backupRecipients(recips, *passFile)
	if err != nil {
		return err
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
	start := time.Now()
	m, size, err := writeBackup(ctx, cfg, c.configPath(), st, recipients, *out, actor())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup written to %s (%d bytes, %d files, %d certificates, %d events, %d HSM keys by reference) in %s\n",
		*out, size, len(m.Files)+1, m.Counts["certificates"], m.Counts["events"], len(m.HSMKeys), time.Since(start).Round(time.Millisecond))
	return nil
}

// writeBackup writes the encrypted backup of cfg's data directory to out
// and records a backup.create event by who. Shared by `backup create` and
// the server's scheduled backups.
func writeBackup(ctx context.Context, cfg *config.Config, cfgPath string, st *inventory.Store, recipients []age.Recipient, out, who string) (*manifest, int, error) {
	start := time.Now()
	scratch, err := os.MkdirTemp("", "mica-backup-")
	if err != nil {
		return nil, 0, err
	}
	defer os.RemoveAll(scratch)
	m := &manifest{Format: 1, Created: start.UTC(), Host: source(), DataDir: cfg.DataDir, KeyBackend: cfg.Keys.Backend, Files: map[string]string{}}
	files := map[string]string{} // archive path → file on disk
	switch err := st.Snapshot(ctx, filepath.Join(scratch, backupDBName)); {
	case errors.Is(err, inventory.ErrNeedsPGDump):
		// PostgreSQL: pg_dump of one exported snapshot, counted in that
		// same snapshot (backuppg.go).
		dump := filepath.Join(scratch, backupPGDumpName)
		info, err := pgDump(ctx, cfg.Database, dump)
		if err != nil {
			return nil, 0, err
		}
		m.Database, m.Counts, m.PGSchema, m.PGExtensions = "postgres", info.Counts, info.Schema, info.Extensions
		files[backupPGDumpName] = dump
	case err != nil:
		return nil, 0, err
	default:
		files[backupDBName] = filepath.Join(scratch, backupDBName)
		if m.Counts, err = st.TableCounts(ctx); err != nil {
			return nil, 0, err
		}
	}
	if m.SchemaVersion, err = st.SchemaVersion(ctx); err != nil {
		return nil, 0, err
	}
	keys, err := st.Keys(ctx)
	if err != nil {
		return nil, 0, err
	}
	for _, k := range keys {
		if k.Backend == "pkcs11" && k.Status != inventory.KeyDestroyed {
			m.HSMKeys = append(m.HSMKeys, hsmKeyRef{ID: k.ID, URI: k.URI, SPKISHA256: k.SPKISHA256, PublicKey: k.PublicKey})
		}
	}
	files[config.FileName] = cfgPath
	if dir := config.URIPath(cfg.Keys.Backend, "dir"); strings.HasPrefix(cfg.Keys.Backend, "softkms:") && dir != "" {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, 0, err
		}
		for _, ent := range ents {
			if strings.HasSuffix(ent.Name(), ".key") && ent.Type().IsRegular() {
				files[path.Join(backupKeyDir, ent.Name())] = filepath.Join(dir, ent.Name())
			}
		}
	}
	for _, p := range []string{rootPEM, issuingPEM} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, p)); err == nil {
			files[p] = filepath.Join(cfg.DataDir, p)
		}
	}

	var plain bytes.Buffer
	if err := writeArchive(&plain, m, files); err != nil {
		return nil, 0, err
	}
	var enc bytes.Buffer
	w, err := age.Encrypt(&enc, recipients...)
	if err != nil {
		return nil, 0, err
	}
	if _, err := w.Write(plain.Bytes()); err != nil {
		return nil, 0, err
	}
	if err := w.Close(); err != nil {
		return nil, 0, err
	}
	if err := config.WriteFileAtomic(out, enc.Bytes(), 0o600); err != nil {
		return nil, 0, err
	}
	details, _ := json.Marshal(map[string]any{"file": out, "bytes": enc.Len(), "counts": m.Counts, "hsm_keys": len(m.HSMKeys)})
	if _, err := st.AppendEvent(ctx, inventory.Event{Actor: who, Action: "backup.create", Protocol: "cli", Source: source(),
		Object: "backup:" + filepath.Base(out), Outcome: "ok", Details: details}); err != nil {
		return nil, 0, err
	}
	return m, enc.Len(), nil
}
