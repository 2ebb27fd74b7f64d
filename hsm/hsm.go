package hsm

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"time"
)

// KeyType names an algorithm and size. The string form is what config files
// and the CLI use.
type KeyType string

// The key types MICA can create. Ed25519 is software-only: SoftHSM2 and most
// HSMs reachable through crypto11 cannot generate it.
const (
	ECP256  KeyType = "EC-P256"
	ECP384  KeyType = "EC-P384"
	RSA2048 KeyType = "RSA-2048"
	RSA3072 KeyType = "RSA-3072"
	RSA4096 KeyType = "RSA-4096"
	Ed25519 KeyType = "Ed25519"
)

// KeyTypes lists every supported key type, in the order the CLI documents them.
var KeyTypes = []KeyType{ECP256, ECP384, RSA2048, RSA3072, RSA4096, Ed25519}

// ParseKeyType accepts the canonical names case-insensitively and the common
// short forms ("p256", "ec-p384", "rsa2048", "rsa-3072", "ed25519").
func ParseKeyType(s string) (KeyType, error) {
	n := strings.ToLower(strings.NewReplacer("-", "", "_", "", " ", "").Replace(s))
	switch n {
	case "ecp256", "p256", "ecdsap256", "ec256":
		return ECP256, nil
	case "ecp384", "p384", "ecdsap384", "ec384":
		return ECP384, nil
	case "rsa2048":
		return RSA2048, nil
	case "rsa3072":
		return RSA3072, nil
	case "rsa4096":
		return RSA4096, nil
	case "ed25519":
		return Ed25519, nil
	}
	return "", fmt.Errorf("%w: %q (want one of EC-P256, EC-P384, RSA-2048, RSA-3072, RSA-4096, Ed25519)", ErrUnsupported, s)
}

// Protection reports how a private key is held. For PKCS#11 keys it is read
// from the token's object attributes, never assumed.
type Protection struct {
	Backend          string `json:"backend"`           // "pkcs11" or "softkms"
	OnToken          bool   `json:"on_token"`          // CKA_TOKEN: lives in the HSM
	Sensitive        bool   `json:"sensitive"`         // CKA_SENSITIVE
	Extractable      bool   `json:"extractable"`       // CKA_EXTRACTABLE
	AlwaysSensitive  bool   `json:"always_sensitive"`  // CKA_ALWAYS_SENSITIVE
	NeverExtractable bool   `json:"never_extractable"` // CKA_NEVER_EXTRACTABLE
	Encrypted        bool   `json:"encrypted"`         // software key file is passphrase-encrypted
}

// NonExportable reports whether the key sits on a token, sensitive and
// never extractable: the protection NIST SP 800-57 asks of CA keys.
func (p Protection) NonExportable() bool {
	return p.Backend == "pkcs11" && p.OnToken && p.Sensitive && !p.Extractable && p.NeverExtractable
}

// String is a one-line human summary, used by `mica ca show`.
func (p Protection) String() string {
	if p.Backend != "pkcs11" {
		if p.Encrypted {
			return p.Backend + ": software key, passphrase-encrypted file (not HSM-backed)"
		}
		return p.Backend + ": software key (not HSM-backed)"
	}
	return fmt.Sprintf("pkcs11: on-token=%t sensitive=%t extractable=%t always-sensitive=%t never-extractable=%t",
		p.OnToken, p.Sensitive, p.Extractable, p.AlwaysSensitive, p.NeverExtractable)
}

// KeyInfo describes one key object held by a backend.
type KeyInfo struct {
	URI        string     `json:"uri"`
	Label      string     `json:"label"`
	ID         string     `json:"id,omitempty"` // hex CKA_ID for PKCS#11
	Type       KeyType    `json:"type"`
	Protection Protection `json:"protection"`
	Created    time.Time  `json:"created,omitzero"` // zero when the backend cannot tell
}

// Backend holds private keys and signs with them. Private key material never
// leaves a Backend through this interface.
//
// Implementations are safe for concurrent use by many goroutines; Signer
// values they return are too. Methods honour ctx where the underlying module
// allows it (PKCS#11 calls cannot be interrupted once started). Errors wrap
// ErrNotFound, ErrExists, ErrWrongPIN or ErrUnsupported where those apply and
// never contain a PIN, passphrase or key material.
type Backend interface {
	// CreateKey generates a key called name inside the backend and returns its
	// URI. PKCS#11 keys are generated on the token, sensitive and not
	// extractable. It fails with ErrExists if name is taken.
	CreateKey(ctx context.Context, name string, kt KeyType) (uri string, err error)
	// Signer returns a crypto.Signer for the key at uri.
	Signer(ctx context.Context, uri string) (crypto.Signer, error)
	// PublicKey returns the public half of the key at uri.
	PublicKey(ctx context.Context, uri string) (crypto.PublicKey, error)
	// Protection reports how the key at uri is protected.
	Protection(ctx context.Context, uri string) (Protection, error)
	// Keys lists the private keys the backend holds.
	Keys(ctx context.Context) ([]KeyInfo, error)
	// DeleteKey destroys the private key object at uri (for PKCS#11 the
	// key pair objects on the token; for softkms the key file, overwritten
	// first). It is the end of a key's life (NIST SP 800-57 "destroyed"):
	// callers keep the certificate and public key elsewhere for verifying
	// what the key signed. ErrNotFound if there is no such key.
	DeleteKey(ctx context.Context, uri string) error
	// Close releases sessions and modules. Signers are unusable afterwards.
	Close() error
}

// Errors shared by all backends; test with errors.Is.
var (
	ErrNotFound    = errors.New("hsm: key not found")
	ErrExists      = errors.New("hsm: key already exists")
	ErrWrongPIN    = errors.New("hsm: wrong PIN or passphrase")
	ErrUnsupported = errors.New("hsm: unsupported")
	// ErrClosed is returned by a Backend, or a Signer it handed out, after
	// Close.
	ErrClosed = errors.New("hsm: backend is closed")
)

// Config selects and unlocks a backend.
//
//	softkms:dir=/var/lib/mica/keys               passphrase-encrypted PKCS#8 files
//	pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=mica
//
// PKCS#11 tokens are selected by label (token=) or serial, never by slot
// number. The PIN or passphrase is never part of the URI: it comes from
// Secret, loaded from a file or the environment.
type Config struct {
	URI    string
	Secret Secret
}

// Open returns the backend named by cfg.URI.
func Open(ctx context.Context, cfg Config) (Backend, error) {
	scheme, _, ok := strings.Cut(cfg.URI, ":")
	if !ok {
		return nil, fmt.Errorf("hsm: backend URI %q has no scheme (want softkms: or pkcs11:)", redactURI(cfg.URI))
	}
	switch strings.ToLower(scheme) {
	case "softkms":
		return openSoft(ctx, cfg)
	case "pkcs11":
		return openPKCS11(ctx, cfg)
	}
	return nil, fmt.Errorf("%w: backend scheme %q (want softkms or pkcs11)", ErrUnsupported, scheme)
}
