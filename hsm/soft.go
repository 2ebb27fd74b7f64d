package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"go.step.sm/crypto/pemutil"
)

const (
	softScheme = "softkms"
	softExt    = ".key"
	// encryptedPEMType is the RFC 7468 label of an EncryptedPrivateKeyInfo.
	encryptedPEMType = "ENCRYPTED PRIVATE KEY"
	// maxKeyFileSize bounds what we read: an encrypted RSA-4096 key is ~3.5 KB.
	maxKeyFileSize = 64 << 10
)

// softBackend keeps keys as passphrase-encrypted PKCS#8 files in one
// directory. Decrypting runs PBKDF2 with 600 000 iterations (pemutil's
// default), which takes a noticeable fraction of a second, so each key is
// decrypted once and then held in memory until Close.
type softBackend struct {
	dir    string // absolute
	closed atomic.Bool

	mu   sync.Mutex               // guards pass (zeroed on Close) and keys
	pass []byte                   // our own copy, so Close can wipe it
	keys map[string]crypto.Signer // decrypted keys by absolute file path
}

// openSoft opens softkms:dir=DIR. The directory need not exist yet: CreateKey
// makes it (0700), so `mica init` can point at a fresh location.
func openSoft(ctx context.Context, cfg Config) (Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, err := parseURI(softScheme, cfg.URI)
	if err != nil {
		return nil, err
	}
	if err := a.only("softkms backend URI", "dir"); err != nil {
		return nil, err
	}
	if a["dir"] == "" {
		return nil, errors.New("hsm: softkms backend URI needs dir= (e.g. softkms:dir=/var/lib/mica/keys)")
	}
	dir, err := filepath.Abs(a["dir"])
	if err != nil {
		return nil, fmt.Errorf("hsm: softkms dir: %w", err)
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("hsm: softkms dir %s is not a directory", dir)
	}
	if cfg.Secret.Empty() {
		return nil, errors.New("hsm: softkms needs a passphrase (from a file or an environment variable) to protect its key files")
	}
	return &softBackend{
		dir:  dir,
		pass: bytes.Clone(cfg.Secret.Bytes()),
		keys: map[string]crypto.Signer{},
	}, nil
}

func (b *softBackend) check(ctx context.Context) error {
	if b.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// resolve maps a key URI to a file: softkms:name=N is <dir>/N.key;
// softkms:path=/abs/file.key is a key kept elsewhere (an offline root on
// removable media). A dir= attribute is accepted only if it is this
// backend's directory, so a key URI cannot silently point at another store.
func (b *softBackend) resolve(uri string) (path, label string, err error) {
	a, err := parseURI(softScheme, uri)
	if err != nil {
		return "", "", err
	}
	if err := a.only("softkms key URI", "name", "path", "dir"); err != nil {
		return "", "", err
	}
	name, p := a["name"], a["path"]
	switch {
	case name != "" && p != "":
		return "", "", errors.New("hsm: softkms key URI has both name= and path=; use one")
	case name != "":
		if err := ValidKeyName(name); err != nil {
			return "", "", err
		}
		if d, ok := a["dir"]; ok {
			if ad, err := filepath.Abs(d); err != nil || ad != b.dir {
				return "", "", fmt.Errorf("hsm: softkms key URI names dir %s but this backend uses %s", d, b.dir)
			}
		}
		return filepath.Join(b.dir, name+softExt), name, nil
	case p != "":
		if !filepath.IsAbs(p) {
			return "", "", fmt.Errorf("hsm: softkms key path %q must be absolute", p)
		}
		p = filepath.Clean(p)
		return p, strings.TrimSuffix(filepath.Base(p), softExt), nil
	}
	return "", "", errors.New("hsm: softkms key URI needs name= or path=")
}

func (b *softBackend) CreateKey(ctx context.Context, name string, kt KeyType) (string, error) {
	if err := b.check(ctx); err != nil {
		return "", err
	}
	if err := ValidKeyName(name); err != nil {
		return "", err
	}
	path := filepath.Join(b.dir, name+softExt)
	// Cheap early answer; the O_EXCL open below is what actually guarantees
	// no key is ever overwritten.
	if _, err := os.Lstat(path); err == nil {
		return "", fmt.Errorf("%w: %s", ErrExists, path)
	}
	key, err := generateSoftKey(kt)
	if err != nil {
		return "", err
	}
	// Encrypt outside the lock (the KDF is slow) with a copy of the
	// passphrase, which Close may wipe meanwhile.
	b.mu.Lock()
	pass := bytes.Clone(b.pass)
	b.mu.Unlock()
	if b.closed.Load() {
		return "", ErrClosed
	}
	block, err := pemutil.Serialize(key, pemutil.WithPKCS8(true), pemutil.WithPassword(pass))
	clear(pass)
	if err != nil {
		return "", fmt.Errorf("hsm: encrypting new key %s: %w", name, err)
	}
	if block.Type != encryptedPEMType { // never write a clear key by accident
		return "", fmt.Errorf("hsm: internal error: new key %s serialised as %q", name, block.Type)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return "", ErrClosed
	}
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return "", fmt.Errorf("hsm: creating softkms dir: %w", err)
	}
	if err := writeExclusive(path, pem.EncodeToMemory(block)); err != nil {
		return "", err
	}
	b.keys[path] = key
	return softScheme + ":name=" + name, nil
}

func generateSoftKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case ECP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("%w: key type %q", ErrUnsupported, kt)
}

// writeExclusive creates path with mode 0600, failing with ErrExists if it
// is there already, and makes the file and its directory entry durable: a
// CA key that vanishes on power loss after `mica init` reported success
// would be worse than an error.
func writeExclusive(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s", ErrExists, path)
	}
	if err != nil {
		return fmt.Errorf("hsm: creating key file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(path)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("hsm: writing key file: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("hsm: syncing key file: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("hsm: closing key file: %w", err)
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		_ = d.Sync() // best effort: not every filesystem can sync a directory
		_ = d.Close()
	}
	return nil
}

// readKeyPEM reads and decodes a key file without decrypting it.
func readKeyPEM(path string) (*pem.Block, os.FileInfo, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("hsm: opening key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("hsm: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("hsm: key file %s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("hsm: reading key file: %w", err)
	}
	if len(data) > maxKeyFileSize {
		return nil, nil, fmt.Errorf("hsm: key file %s is too large to be a key", path)
	}
	block, rest := pem.Decode(data)
	if block == nil || len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, fmt.Errorf("hsm: key file %s is not a single PEM block", path)
	}
	return block, fi, nil
}

// load returns the decrypted key at path, decrypting it on first use. It
// refuses clear-text key files: softkms's one promise is that keys at rest
// are encrypted.
func (b *softBackend) load(path string) (crypto.Signer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if k, ok := b.keys[path]; ok {
		return k, nil
	}
	block, _, err := readKeyPEM(path)
	if err != nil {
		return nil, err
	}
	if block.Type != encryptedPEMType {
		return nil, fmt.Errorf("hsm: key file %s holds %q, not a passphrase-encrypted PKCS#8 key; softkms refuses clear-text keys", path, block.Type)
	}
	der, err := pemutil.DecryptPEMBlock(block, b.pass)
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, fmt.Errorf("%w: cannot decrypt %s", ErrWrongPIN, path)
	}
	if err != nil {
		return nil, fmt.Errorf("hsm: decrypting %s: %w", path, err)
	}
	// PKCS#8 padding catches most wrong passphrases, but about 1 in 256
	// decrypts to valid padding around garbage: that shows up here.
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot decrypt %s (or the file is damaged)", ErrWrongPIN, path)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key in %s is a %T", ErrUnsupported, path, k)
	}
	if _, err := KeyTypeOf(signer.Public()); err != nil {
		return nil, fmt.Errorf("key in %s: %w", path, err)
	}
	b.keys[path] = signer
	return signer, nil
}

func (b *softBackend) Signer(ctx context.Context, uri string) (crypto.Signer, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	path, _, err := b.resolve(uri)
	if err != nil {
		return nil, err
	}
	k, err := b.load(path)
	if err != nil {
		return nil, err
	}
	return &keySigner{pub: k.Public(), inner: k, closed: &b.closed}, nil
}

func (b *softBackend) PublicKey(ctx context.Context, uri string) (crypto.PublicKey, error) {
	s, err := b.Signer(ctx, uri)
	if err != nil {
		return nil, err
	}
	return s.Public(), nil
}

// Protection reads the file's PEM label rather than assuming: a key file
// somebody replaced with a clear-text one reports Encrypted=false.
func (b *softBackend) Protection(ctx context.Context, uri string) (Protection, error) {
	if err := b.check(ctx); err != nil {
		return Protection{}, err
	}
	path, _, err := b.resolve(uri)
	if err != nil {
		return Protection{}, err
	}
	block, _, err := readKeyPEM(path)
	if err != nil {
		return Protection{}, err
	}
	return Protection{Backend: softScheme, Encrypted: block.Type == encryptedPEMType}, nil
}

// Keys lists <dir>/*.key. Telling the key type needs the key decrypted, so
// the first listing costs one KDF run per key; a key that cannot be
// decrypted with this backend's passphrase makes Keys fail.
func (b *softBackend) Keys(ctx context.Context) ([]KeyInfo, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(b.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hsm: listing softkms dir: %w", err)
	}
	var out []KeyInfo
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), softExt)
		if !ok || ValidKeyName(name) != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		path := filepath.Join(b.dir, e.Name())
		if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		uri := softScheme + ":name=" + name
		k, err := b.load(path)
		if err != nil {
			return nil, err
		}
		kt, _ := KeyTypeOf(k.Public()) // load already rejected unknown types
		prot, err := b.Protection(ctx, uri)
		if err != nil {
			return nil, err
		}
		ki := KeyInfo{URI: uri, Label: name, Type: kt, Protection: prot}
		if fi, err := os.Stat(path); err == nil {
			ki.Created = fi.ModTime().UTC()
		}
		out = append(out, ki)
	}
	return out, nil
}

// Close forgets every decrypted key and wipes the passphrase copy. Go cannot
// promise the key bytes are gone from memory (big.Int copies, GC), but no
// reference to them survives.
func (b *softBackend) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.pass)
	b.pass = nil
	clear(b.keys)
	return nil
}

// DeleteKey overwrites the key file with zeros, syncs and removes it, and
// forgets the decrypted copy. The file is encrypted already; overwriting is
// for the cases where the passphrase is later disclosed. Copy-on-write and
// journaling filesystems may keep old blocks, which is why production CA
// keys belong on an HSM.
func (b *softBackend) DeleteKey(ctx context.Context, uri string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	path, _, err := b.resolve(uri)
	if err != nil {
		return err
	}
	if _, _, err := readKeyPEM(path); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.keys, path)
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("hsm: deleting %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("hsm: deleting %s: %w", path, err)
	}
	_, werr := f.Write(make([]byte, fi.Size()))
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		return fmt.Errorf("hsm: overwriting %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("hsm: deleting %s: %w", path, err)
	}
	return nil
}
