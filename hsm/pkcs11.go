//go:build cgo

package hsm

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	p11 "github.com/miekg/pkcs11"
	"go.step.sm/crypto/kms/apiv1"
	kmsp11 "go.step.sm/crypto/kms/pkcs11"
	kmsuri "go.step.sm/crypto/kms/uri"
)

const (
	p11Scheme = "pkcs11"
	// defaultP11Module is kms's default too: p11-kit's proxy, which loads
	// whatever modules the system has registered.
	defaultP11Module = "p11-kit-proxy.so"
)

// pinAttrs are the RFC 7512 / kms ways to put a PIN into a URI. All are
// refused: a URI ends up in config dumps, logs and argv.
var pinAttrs = []string{"pin-value", "pin-source", "pin-prompt"}

// p11Backend signs with keys on a PKCS#11 token through kms (crypto11).
type p11Backend struct {
	kms    *kmsp11.PKCS11
	rd     *p11Reader
	module string
	token  string // token label, or "" when selected by serial
	serial string
	closed atomic.Bool
	// createMu makes "is the name free? then generate" atomic within this
	// process. PKCS#11 has no create-if-absent, so two processes creating
	// the same name at once could still both succeed; `mica init` is a
	// one-operator ceremony, not a concurrent service.
	createMu sync.Mutex
}

// PKCS11Supported reports whether this binary can use PKCS#11 tokens (it
// was built with cgo). `mica version` and tests use it; Open does not need
// it, since it fails loudly either way.
func PKCS11Supported() bool { return true }

func openPKCS11(ctx context.Context, cfg Config) (Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, err := parseURI(p11Scheme, cfg.URI)
	if err != nil {
		return nil, err
	}
	for _, k := range pinAttrs {
		if _, ok := a[k]; ok {
			return nil, fmt.Errorf("hsm: pkcs11 backend URI must not carry the PIN (%s): put the PIN in a file or an environment variable and configure that as the secret", k)
		}
	}
	if _, ok := a["slot-id"]; ok {
		return nil, errors.New("hsm: pkcs11 backend URI selects the token by slot-id, which is refused: slot ids are not stable " +
			"(SoftHSM2 --init-token --free assigns a random one, HSMs renumber slots); select the token with token=<label> or serial=<serial>")
	}
	if err := a.only("pkcs11 backend URI", "module-path", "token", "serial", "max-sessions"); err != nil {
		return nil, err
	}
	b := &p11Backend{module: a["module-path"], token: a["token"], serial: a["serial"]}
	if b.module == "" {
		b.module = defaultP11Module
	}
	switch {
	case b.token == "" && b.serial == "":
		return nil, errors.New("hsm: pkcs11 backend URI needs token=<label> or serial=<serial>")
	case b.token != "" && b.serial != "":
		return nil, errors.New("hsm: pkcs11 backend URI has both token= and serial=; use one")
	}
	vals := url.Values{"module-path": {b.module}}
	if b.token != "" {
		vals.Set("token", b.token)
	} else {
		vals.Set("serial", b.serial)
	}
	if ms := a["max-sessions"]; ms != "" {
		if n, err := strconv.Atoi(ms); err != nil || n < 2 {
			return nil, errors.New("hsm: pkcs11 max-sessions must be an integer of at least 2")
		}
		vals.Set("max-sessions", ms)
	}
	if cfg.Secret.Empty() {
		return nil, fmt.Errorf("hsm: pkcs11 token %s needs its user PIN (from a file or an environment variable)", b.desc())
	}
	// The PIN travels in Options.Pin, never in the URI string.
	k, err := kmsp11.New(ctx, apiv1.Options{
		Type: apiv1.PKCS11,
		URI:  kmsuri.New(p11Scheme, vals).String(),
		Pin:  string(cfg.Secret.Bytes()),
	})
	if err != nil {
		return nil, b.openError(err)
	}
	b.kms = k
	if b.rd, err = openReader(b.module, b.token, b.serial); err != nil {
		_ = k.Close()
		return nil, err
	}
	return b, nil
}

func (b *p11Backend) desc() string { return tokenDesc(b.token, b.serial) }

// openError turns kms/crypto11 failures into errors that name the problem.
// crypto11 wraps miekg's pkcs11.Error with pkg/errors, which unwraps; the
// message check is a fallback for modules or versions that flatten it.
func (b *p11Backend) openError(err error) error {
	msg := err.Error()
	switch {
	case isCKR(err, p11.CKR_PIN_INCORRECT), isCKR(err, p11.CKR_PIN_LEN_RANGE), isCKR(err, p11.CKR_PIN_INVALID),
		strings.Contains(msg, "CKR_PIN_INCORRECT"), strings.Contains(msg, "CKR_PIN_LEN_RANGE"):
		rv := "CKR_PIN_INCORRECT"
		var pe p11.Error
		if errors.As(err, &pe) {
			rv = pe.Error() // e.g. "pkcs11: 0xA2: CKR_PIN_LEN_RANGE"; a return code, never the PIN
		}
		return fmt.Errorf("%w: PKCS#11 login to token %s refused the PIN (%s)", ErrWrongPIN, b.desc(), rv)
	case isCKR(err, p11.CKR_PIN_LOCKED), strings.Contains(msg, "CKR_PIN_LOCKED"):
		return fmt.Errorf("hsm: the user PIN of PKCS#11 token %s is locked; the security officer must reset it", b.desc())
	case strings.Contains(msg, "could not find PKCS#11 token"):
		return fmt.Errorf("hsm: PKCS#11 module %s has no token %s (is the token initialised, and is SOFTHSM2_CONF or the HSM client configured?)", b.module, b.desc())
	case strings.Contains(msg, "failed to open module"):
		return fmt.Errorf("hsm: cannot load PKCS#11 module %s (missing file, wrong architecture or missing dependencies)", b.module)
	}
	return fmt.Errorf("hsm: opening PKCS#11 token %s in %s: %w", b.desc(), b.module, err)
}

func (b *p11Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// p11KeyURI is the URI this package hands out for a key: the hex CKA_ID and
// the label, so either alone would find it and both together are exact.
func p11KeyURI(id []byte, label string) string {
	var parts []string
	if len(id) > 0 {
		parts = append(parts, "id="+hex.EncodeToString(id))
	}
	if label != "" {
		parts = append(parts, "object="+EscapeURIValue(label))
	}
	return p11Scheme + ":" + strings.Join(parts, ";")
}

// kmsKeyName is the same key in the form kms parses (url.Values encoding, so
// labels with '+' or '&' survive its ParseQuery).
func kmsKeyName(id []byte, label string) string {
	v := url.Values{}
	if len(id) > 0 {
		v.Set("id", hex.EncodeToString(id))
	}
	if label != "" {
		v.Set("object", label)
	}
	return kmsuri.New(p11Scheme, v).String()
}

// keyID derives a stable CKA_ID from the name: the same name always gets the
// same id, so a key URI is reproducible from its name, and 64 bits make a
// collision on one token implausible (CreateKey still checks).
func keyID(name string) []byte {
	sum := sha256.Sum256([]byte(name))
	return sum[:8]
}

// parseKey reads a key URI. Token-selecting attributes are allowed (the
// DESIGN's full form pkcs11:module-path=…;token=…;object=…) but must name
// this backend's token: a key URI must not silently resolve on another one.
func (b *p11Backend) parseKey(uri string) (id []byte, label string, err error) {
	a, err := parseURI(p11Scheme, uri)
	if err != nil {
		return nil, "", err
	}
	for _, k := range pinAttrs {
		if _, ok := a[k]; ok {
			return nil, "", fmt.Errorf("hsm: pkcs11 key URI must not carry the PIN (%s)", k)
		}
	}
	if err := a.only("pkcs11 key URI", "id", "object", "type", "token", "serial", "module-path"); err != nil {
		return nil, "", err
	}
	for k, want := range map[string]string{"token": b.token, "serial": b.serial, "module-path": b.module} {
		if v, ok := a[k]; ok && v != want {
			return nil, "", fmt.Errorf("hsm: pkcs11 key URI has %s=%s but this backend uses token %s in %s", k, v, b.desc(), b.module)
		}
	}
	if t, ok := a["type"]; ok && t != "private" {
		return nil, "", fmt.Errorf("hsm: pkcs11 key URI has type=%s; keys are type=private", t)
	}
	if v := a["id"]; v != "" {
		// Our ids are hex, as in kms; anything else is taken as the raw,
		// percent-decoded bytes RFC 7512 specifies.
		if id, err = hex.DecodeString(strings.ReplaceAll(v, ":", "")); err != nil {
			id = []byte(v)
		}
	}
	label = a["object"]
	if len(id) == 0 && label == "" {
		return nil, "", errors.New("hsm: pkcs11 key URI needs id= or object=")
	}
	return id, label, nil
}

// findOne resolves a key URI to exactly one private key object.
func (b *p11Backend) findOne(uri string) (p11Key, error) {
	id, label, err := b.parseKey(uri)
	if err != nil {
		return p11Key{}, err
	}
	keys, err := b.rd.privateKeys(id, label)
	if err != nil {
		return p11Key{}, err
	}
	switch len(keys) {
	case 0:
		return p11Key{}, fmt.Errorf("%w: %s on PKCS#11 token %s", ErrNotFound, uri, b.desc())
	case 1:
		return keys[0], nil
	}
	return p11Key{}, fmt.Errorf("hsm: %s matches %d private keys on token %s; use a URI with both id= and object=", uri, len(keys), b.desc())
}

func (b *p11Backend) CreateKey(ctx context.Context, name string, kt KeyType) (string, error) {
	if err := b.check(ctx); err != nil {
		return "", err
	}
	if err := ValidKeyName(name); err != nil {
		return "", err
	}
	req := apiv1.CreateKeyRequest{Extractable: false}
	switch kt {
	case ECP256:
		req.SignatureAlgorithm = apiv1.ECDSAWithSHA256
	case ECP384:
		req.SignatureAlgorithm = apiv1.ECDSAWithSHA384
	case RSA2048, RSA3072, RSA4096:
		req.SignatureAlgorithm = apiv1.SHA256WithRSA
		req.Bits, _ = strconv.Atoi(strings.TrimPrefix(string(kt), "RSA-"))
	case Ed25519:
		return "", fmt.Errorf("%w: Ed25519 keys on PKCS#11 tokens (crypto11 and SoftHSM2 cannot generate or use them); use EC-P256 or EC-P384", ErrUnsupported)
	default:
		return "", fmt.Errorf("%w: key type %q", ErrUnsupported, kt)
	}
	id := keyID(name)
	req.Name = kmsKeyName(id, name)

	b.createMu.Lock()
	defer b.createMu.Unlock()
	what, err := b.rd.inUse(id, name)
	if err != nil {
		return "", err
	}
	if what != "" {
		return "", fmt.Errorf("%w: token %s already holds %s", ErrExists, b.desc(), what)
	}
	if _, err := b.kms.CreateKey(&req); err != nil {
		if errors.As(err, new(apiv1.AlreadyExistsError)) {
			return "", fmt.Errorf("%w: %s on token %s", ErrExists, name, b.desc())
		}
		return "", fmt.Errorf("hsm: generating %s key %s on token %s: %w", kt, name, b.desc(), err)
	}
	uri := p11KeyURI(id, name)
	// Check what the token actually did rather than trusting the template:
	// a token that ignores CKA_SENSITIVE or CKA_EXTRACTABLE=false must not
	// end up holding a CA key we believe is protected.
	k, err := b.findOne(uri)
	if err != nil {
		return "", fmt.Errorf("hsm: reading back new key %s: %w", name, err)
	}
	if p := k.prot; !p.OnToken || !p.Sensitive || p.Extractable {
		_ = b.kms.DeleteKey(req.Name)
		return "", fmt.Errorf("hsm: token %s created key %s without the required protection (%s); the key was deleted", b.desc(), name, p)
	}
	return uri, nil
}

func (b *p11Backend) Signer(ctx context.Context, uri string) (crypto.Signer, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	k, err := b.findOne(uri)
	if err != nil {
		return nil, err
	}
	// Name the key by its exact id and label so crypto11 finds the very
	// object we just resolved.
	s, err := b.kms.CreateSigner(&apiv1.CreateSignerRequest{SigningKey: kmsKeyName(k.id, k.label)})
	if err != nil {
		return nil, fmt.Errorf("hsm: loading signer for %s: %w", uri, err)
	}
	return &keySigner{pub: s.Public(), inner: s, closed: &b.closed}, nil
}

func (b *p11Backend) PublicKey(ctx context.Context, uri string) (crypto.PublicKey, error) {
	s, err := b.Signer(ctx, uri)
	if err != nil {
		return nil, err
	}
	return s.Public(), nil
}

func (b *p11Backend) Protection(ctx context.Context, uri string) (Protection, error) {
	if err := b.check(ctx); err != nil {
		return Protection{}, err
	}
	k, err := b.findOne(uri)
	if err != nil {
		return Protection{}, err
	}
	return k.prot, nil
}

// Keys lists every private key object on the token, including ones MICA did
// not create (their Type is empty if MICA cannot use them).
func (b *p11Backend) Keys(ctx context.Context) ([]KeyInfo, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	keys, err := b.rd.privateKeys(nil, "")
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, KeyInfo{
			URI:        p11KeyURI(k.id, k.label),
			Label:      k.label,
			ID:         hex.EncodeToString(k.id),
			Type:       k.kt,
			Protection: k.prot,
		})
	}
	return out, nil
}

// Close releases the reader's module handle first (it never finalises), then
// kms, whose crypto11 context finalises the module once the last context
// using it in this process is gone. After that a new Open starts afresh,
// re-reading SOFTHSM2_CONF.
func (b *p11Backend) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	b.rd.close()
	if err := b.kms.Close(); err != nil {
		return fmt.Errorf("hsm: closing PKCS#11 token %s: %w", b.desc(), err)
	}
	return nil
}

// DeleteKey destroys the key pair on the token. It resolves the URI to
// exactly one private key first, so an ambiguous or foreign URI deletes
// nothing, and reads the token again afterwards: kms reports success for a
// key it did not find, and destruction must be proven, not assumed.
func (b *p11Backend) DeleteKey(ctx context.Context, uri string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	k, err := b.findOne(uri)
	if err != nil {
		return err
	}
	b.createMu.Lock()
	defer b.createMu.Unlock()
	if err := b.kms.DeleteKey(kmsKeyName(k.id, k.label)); err != nil {
		return fmt.Errorf("hsm: deleting key %s on token %s: %w", uri, b.desc(), err)
	}
	left, err := b.rd.privateKeys(k.id, k.label)
	if err != nil {
		return fmt.Errorf("hsm: checking key %s is gone from token %s: %w", uri, b.desc(), err)
	}
	if len(left) != 0 {
		return fmt.Errorf("hsm: token %s still holds key %s after deletion", b.desc(), uri)
	}
	return nil
}
