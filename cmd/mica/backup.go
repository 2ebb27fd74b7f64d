package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/hsm"
)

// A backup is an age-encrypted, gzip-compressed tar of:
//
//	manifest.json   what is inside, with SHA-256 of every file
//	mica.db         VACUUM INTO snapshot of the SQLite inventory, or
//	mica.pgdump     pg_dump of the PostgreSQL store's schema (backuppg.go)
//	mica.yaml       the configuration (never holds a secret)
//	keys/*.key      softkms key files (already passphrase-encrypted)
//	*.pem           the CA certificates init wrote
//
// HSM private keys are never in it: the manifest records their URIs and
// public keys, and the vendor's own backup (for SoftHSM2 the token
// directory) restores them. age authenticates every 64 KiB chunk, so one
// flipped byte anywhere fails decryption; the manifest hashes catch a
// consistent but wrong archive.
const (
	manifestName = "manifest.json"
	backupDBName = "mica.db"
	backupKeyDir = "keys"
)

// manifest describes a backup.
type manifest struct {
	Format        int               `json:"format"`
	Created       time.Time         `json:"created"`
	Host          string            `json:"host"`
	DataDir       string            `json:"data_dir"`
	SchemaVersion int               `json:"schema_version"`
	Counts        map[string]int64  `json:"counts"`
	Files         map[string]string `json:"files"` // archive path → hex SHA-256
	KeyBackend    string            `json:"key_backend"`
	HSMKeys       []hsmKeyRef       `json:"hsm_keys,omitempty"`
	// Database is "postgres" when the inventory travels as a pg_dump
	// (mica.pgdump) of schema PGSchema instead of a SQLite snapshot.
	Database     string   `json:"database,omitempty"`
	PGSchema     string   `json:"pg_schema,omitempty"`
	PGExtensions []string `json:"pg_extensions,omitempty"` // name@schema, created before the restore
}

// hsmKeyRef is a key the backup cannot carry: where it is and what its
// public half is, so a restore can re-bind and check the token.
type hsmKeyRef struct {
	ID         string `json:"id"`
	URI        string `json:"uri"`
	SPKISHA256 string `json:"spki_sha256"`
	PublicKey  []byte `json:"public_key"`
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// backupRecipients parses --recipient / --passphrase-file.
func backupRecipients(recips []string, passFile string) ([]age.Recipient, error) {
	switch {
	case len(recips) > 0 && passFile != "":
		return nil, usageErrorf("give --recipient or --passphrase-file, not both (age cannot mix a passphrase with other recipients)")
	case passFile != "":
		pass, err := readPassphrase(passFile)
		if err != nil {
			return nil, err
		}
		r, err := age.NewScryptRecipient(pass)
		if err != nil {
			return nil, usageErrorf("--passphrase-file: %v", err)
		}
		return []age.Recipient{r}, nil
	case len(recips) == 0:
		return nil, usageErrorf("backup create needs --recipient AGE-PUBKEY (repeatable) or --passphrase-file FILE")
	}
	var out []age.Recipient
	for _, s := range recips {
		r, err := age.ParseX25519Recipient(strings.TrimSpace(s))
		if err != nil {
			return nil, usageErrorf("--recipient %q: %v", s, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func readPassphrase(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", usageErrorf("--passphrase-file: %v", err)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if len(p) < 12 {
		return "", usageErrorf("--passphrase-file: the passphrase must be at least 12 characters")
	}
	return p, nil
}

// writeArchive writes the gzip'd tar: the manifest first, so a reader
// knows what to expect before it reads anything else.
func writeArchive(w io.Writer, m *manifest, files map[string]string) error {
	data := map[string][]byte{}
	for name, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		m.Files[name] = hex.EncodeToString(sum[:])
		data[name] = b
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), ModTime: m.Created, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := put(manifestName, mj); err != nil {
		return err
	}
	for name, b := range data {
		if err := put(name, b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// openBackup decrypts file and extracts it into dir, checking every file
// against the manifest. Any corruption (age's authentication, a hash, a
// missing or extra file) is an error naming what failed.
func openBackup(file, identityFile, passFile, dir string) (*manifest, error) {
	var ids []age.Identity
	switch {
	case identityFile != "" && passFile != "":
		return nil, usageErrorf("give --identity or --passphrase-file, not both")
	case identityFile != "":
		f, err := os.Open(identityFile)
		if err != nil {
			return nil, usageErrorf("--identity: %v", err)
		}
		defer f.Close()
		if ids, err = age.ParseIdentities(f); err != nil {
			return nil, usageErrorf("--identity: %v", err)
		}
	case passFile != "":
		pass, err := readPassphrase(passFile)
		if err != nil {
			return nil, err
		}
		id, err := age.NewScryptIdentity(pass)
		if err != nil {
			return nil, usageErrorf("--passphrase-file: %v", err)
		}
		ids = []age.Identity{id}
	default:
		return nil, usageErrorf("give --identity FILE (age X25519 identity) or --passphrase-file FILE")
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	defer f.Close()
	corrupt := func(format string, a ...any) error {
		return &cliError{code: exitRefused, msg: "backup " + file + " is damaged or not ours: " + fmt.Sprintf(format, a...)}
	}
	r, err := age.Decrypt(f, ids...)
	if err != nil {
		return nil, corrupt("cannot decrypt (%v)", err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, 8<<30))
	if err != nil {
		return nil, corrupt("decryption failed (%v)", err)
	}
	gz, err := gzip.NewReader(bytes.NewReader(plain))
	if err != nil {
		return nil, corrupt("%v", err)
	}
	tr := tar.NewReader(gz)
	var m *manifest
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, corrupt("%v", err)
		}
		name := path.Clean(h.Name)
		if h.Typeflag != tar.TypeReg || strings.HasPrefix(name, "..") || path.IsAbs(name) || strings.Count(name, "/") > 1 {
			return nil, corrupt("unexpected entry %q", h.Name)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, corrupt("%v", err)
		}
		if name == manifestName {
			m = &manifest{}
			if err := json.Unmarshal(b, m); err != nil {
				return nil, corrupt("manifest: %v", err)
			}
			continue
		}
		if m == nil {
			return nil, corrupt("no manifest first")
		}
		sum := sha256.Sum256(b)
		if want, ok := m.Files[name]; !ok || want != hex.EncodeToString(sum[:]) {
			return nil, corrupt("%s does not match the manifest", name)
		}
		seen[name] = true
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			return nil, err
		}
	}
	if m == nil {
		return nil, corrupt("no manifest")
	}
	for name := range m.Files {
		if !seen[name] {
			return nil, corrupt("%s is missing", name)
		}
	}
	return m, nil
}

// rebind rewrites the restored mica.yaml for its new home: the data
// directory, the SQLite file and a softkms key directory move with it;
// HSM backends and secret files stay as they were (re-bound, not copied).
func rebind(dir string, m *manifest) (*config.Config, error) {
	p := filepath.Join(dir, config.FileName)
	cfg, err := config.Load(p)
	if err != nil {
		return nil, fmt.Errorf("restored %s: %w", config.FileName, err)
	}
	cfg.DataDir = dir
	if strings.HasPrefix(cfg.Database, "sqlite:") {
		cfg.Database = "sqlite:" + filepath.Join(dir, backupDBName)
	}
	if strings.HasPrefix(m.KeyBackend, "softkms:") {
		cfg.Keys.Backend = hsm.SoftKMSURI(filepath.Join(dir, backupKeyDir))
	}
	if err := reanchorSecrets(cfg, p, dir, m.DataDir); err != nil {
		return nil, err
	}
	if err := cfg.Write(p); err != nil {
		return nil, err
	}
	return config.Load(p)
}

// reanchorSecrets points relative secret files of the restored
// configuration (p, loaded as cfg) back at the data directory the backup
// was taken from. Secrets never travel in a backup, so "secret_file:
// passphrase" (what `mica dev` writes) would otherwise name a file in the
// scratch or restore directory that does not exist. A secret file that
// does exist under dir (the operator put it there) is kept.
func reanchorSecrets(cfg *config.Config, p, dir, origin string) error {
	if origin == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	orig, err := config.Parse(b, origin)
	if err != nil {
		return fmt.Errorf("restored %s: %w", config.FileName, err)
	}
	for _, f := range []struct {
		cur  *string
		from string
	}{
		{&cfg.Keys.SecretFile, orig.Keys.SecretFile},
		{&cfg.Keys.RootSecretFile, orig.Keys.RootSecretFile},
	} {
		if *f.cur == "" || *f.cur == f.from || !strings.HasPrefix(*f.cur, filepath.Clean(dir)+string(filepath.Separator)) {
			continue // absolute in the configuration: nothing to re-anchor
		}
		if _, err := os.Stat(*f.cur); err == nil {
			continue
		}
		*f.cur = f.from
	}
	return nil
}
