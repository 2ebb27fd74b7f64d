//go:build cgo

package hsm

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"sync"

	p11 "github.com/miekg/pkcs11"
)

// ckkECEdwards is CKK_EC_EDWARDS (PKCS#11 3.0), which miekg/pkcs11 v1.1.2
// does not define.
const ckkECEdwards = 0x40

// DER of the namedCurve OIDs as they appear in CKA_EC_PARAMS.
var (
	oidP256 = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	oidP384 = []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}
)

// p11Reader reads object attributes straight from the module. kms and
// crypto11 keep their context private, so this opens the same module a
// second time in the same process: dlopen hands back the same library, whose
// C_Initialize then reports CKR_CRYPTOKI_ALREADY_INITIALIZED. The library
// belongs to crypto11, so the reader never calls C_Finalize on it (that would
// pull the token out from under every signer). Login state in PKCS#11 is per
// application and token, not per session, so the reader's read-only sessions
// see private objects because crypto11's long-lived session is logged in.
type p11Reader struct {
	mu    sync.Mutex // a PKCS#11 session must not be used concurrently
	ctx   *p11.Ctx
	slot  uint
	owned bool // our C_Initialize succeeded: only then may we finalise
}

// p11Key is what the reader learns about one private key object.
type p11Key struct {
	id    []byte
	label string
	kt    KeyType // "" when the token holds a key MICA does not use
	prot  Protection
}

func isCKR(err error, rv uint) bool {
	var pe p11.Error
	return errors.As(err, &pe) && uint(pe) == rv
}

func openReader(module, label, serial string) (*p11Reader, error) {
	c := p11.New(module)
	if c == nil {
		return nil, fmt.Errorf("hsm: cannot load PKCS#11 module %s", module)
	}
	r := &p11Reader{ctx: c, owned: true}
	if err := c.Initialize(); err != nil {
		if !isCKR(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			c.Destroy()
			return nil, fmt.Errorf("hsm: initialising PKCS#11 module %s: %w", module, err)
		}
		r.owned = false
	}
	slots, err := c.GetSlotList(true)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("hsm: listing PKCS#11 slots: %w", err)
	}
	var match []uint
	var serials []string
	for _, s := range slots {
		ti, err := c.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if (label != "" && ti.Label == label) || (serial != "" && ti.SerialNumber == serial) {
			match = append(match, s)
			serials = append(serials, ti.SerialNumber)
		}
	}
	switch {
	case len(match) == 0:
		r.close()
		return nil, fmt.Errorf("hsm: PKCS#11 token %s disappeared from %s", tokenDesc(label, serial), module)
	case len(match) > 1:
		// crypto11 would quietly take the first; a CA must not guess which
		// token holds its keys.
		r.close()
		return nil, fmt.Errorf("hsm: %d PKCS#11 tokens match %s (serials %s); select one with serial=",
			len(match), tokenDesc(label, serial), strings.Join(serials, ", "))
	}
	r.slot = match[0]
	return r, nil
}

func tokenDesc(label, serial string) string {
	if serial != "" {
		return fmt.Sprintf("with serial %q", serial)
	}
	return fmt.Sprintf("labelled %q", label)
}

// close releases the reader's handle on the module. It finalises only if
// this reader initialised the library itself, which does not happen while
// crypto11 holds it.
func (r *p11Reader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil {
		return
	}
	if r.owned {
		_ = r.ctx.Finalize()
	}
	r.ctx.Destroy()
	r.ctx = nil
}

// withSession runs fn in a fresh read-only session, closed afterwards.
func (r *p11Reader) withSession(fn func(sh p11.SessionHandle) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil {
		return ErrClosed
	}
	sh, err := r.ctx.OpenSession(r.slot, p11.CKF_SERIAL_SESSION)
	if err != nil {
		return fmt.Errorf("hsm: opening PKCS#11 session: %w", err)
	}
	defer func() { _ = r.ctx.CloseSession(sh) }()
	if si, err := r.ctx.GetSessionInfo(sh); err == nil && si.State == p11.CKS_RO_PUBLIC_SESSION {
		// Without a login private keys are invisible and every lookup would
		// wrongly say "not found".
		return errors.New("hsm: PKCS#11 token is not logged in (was it removed or reset?)")
	}
	return fn(sh)
}

func (r *p11Reader) find(sh p11.SessionHandle, tmpl []*p11.Attribute) ([]p11.ObjectHandle, error) {
	if err := r.ctx.FindObjectsInit(sh, tmpl); err != nil {
		return nil, fmt.Errorf("hsm: PKCS#11 FindObjectsInit: %w", err)
	}
	var out []p11.ObjectHandle
	for {
		hs, _, err := r.ctx.FindObjects(sh, 64)
		if err != nil {
			_ = r.ctx.FindObjectsFinal(sh)
			return nil, fmt.Errorf("hsm: PKCS#11 FindObjects: %w", err)
		}
		if len(hs) == 0 {
			break
		}
		out = append(out, hs...)
	}
	if err := r.ctx.FindObjectsFinal(sh); err != nil {
		return nil, fmt.Errorf("hsm: PKCS#11 FindObjectsFinal: %w", err)
	}
	return out, nil
}

// attrs fetches attribute values; ones the object does not have come back
// nil. One call for the lot, falling back to one call per attribute because
// a single unsupported attribute fails the whole C_GetAttributeValue.
func (r *p11Reader) attrs(sh p11.SessionHandle, h p11.ObjectHandle, types ...uint) map[uint][]byte {
	req := make([]*p11.Attribute, len(types))
	for i, t := range types {
		req[i] = p11.NewAttribute(t, nil)
	}
	out := make(map[uint][]byte, len(types))
	if got, err := r.ctx.GetAttributeValue(sh, h, req); err == nil {
		for _, a := range got {
			out[a.Type] = a.Value
		}
		return out
	}
	for _, t := range types {
		if got, err := r.ctx.GetAttributeValue(sh, h, []*p11.Attribute{p11.NewAttribute(t, nil)}); err == nil && len(got) == 1 {
			out[t] = got[0].Value
		}
	}
	return out
}

func attrBool(v []byte) bool { return len(v) == 1 && v[0] != 0 }

// attrUlong decodes a CK_ULONG, which is native-endian and as wide as the
// platform's unsigned long.
func attrUlong(v []byte) (uint64, bool) {
	switch len(v) {
	case 8:
		return binary.NativeEndian.Uint64(v), true
	case 4:
		return uint64(binary.NativeEndian.Uint32(v)), true
	}
	return 0, false
}

// readKey reads everything Protection and Keys report about a private key.
func (r *p11Reader) readKey(sh p11.SessionHandle, h p11.ObjectHandle) p11Key {
	a := r.attrs(sh, h, p11.CKA_ID, p11.CKA_LABEL, p11.CKA_KEY_TYPE, p11.CKA_TOKEN,
		p11.CKA_SENSITIVE, p11.CKA_EXTRACTABLE, p11.CKA_ALWAYS_SENSITIVE, p11.CKA_NEVER_EXTRACTABLE)
	k := p11Key{
		id:    a[p11.CKA_ID],
		label: string(a[p11.CKA_LABEL]),
		prot: Protection{
			Backend:          p11Scheme,
			OnToken:          attrBool(a[p11.CKA_TOKEN]),
			Sensitive:        attrBool(a[p11.CKA_SENSITIVE]),
			Extractable:      attrBool(a[p11.CKA_EXTRACTABLE]),
			AlwaysSensitive:  attrBool(a[p11.CKA_ALWAYS_SENSITIVE]),
			NeverExtractable: attrBool(a[p11.CKA_NEVER_EXTRACTABLE]),
		},
	}
	ckk, ok := attrUlong(a[p11.CKA_KEY_TYPE])
	if !ok {
		return k
	}
	switch ckk {
	case p11.CKK_EC:
		switch params := r.attrs(sh, h, p11.CKA_EC_PARAMS)[p11.CKA_EC_PARAMS]; {
		case bytes.Equal(params, oidP256):
			k.kt = ECP256
		case bytes.Equal(params, oidP384):
			k.kt = ECP384
		}
	case p11.CKK_RSA:
		// The modulus is public and readable on a sensitive private key;
		// CKA_MODULUS_BITS is only defined on the public key object.
		bits := new(big.Int).SetBytes(r.attrs(sh, h, p11.CKA_MODULUS)[p11.CKA_MODULUS]).BitLen()
		if bits == 0 && len(k.id) > 0 {
			bits = r.publicModulusBits(sh, k.id)
		}
		switch bits {
		case 2048:
			k.kt = RSA2048
		case 3072:
			k.kt = RSA3072
		case 4096:
			k.kt = RSA4096
		}
	case ckkECEdwards:
		k.kt = Ed25519 // listed for completeness; crypto11 cannot sign with it
	}
	return k
}

func (r *p11Reader) publicModulusBits(sh p11.SessionHandle, id []byte) int {
	hs, err := r.find(sh, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
		p11.NewAttribute(p11.CKA_ID, id),
	})
	if err != nil || len(hs) == 0 {
		return 0
	}
	n, _ := attrUlong(r.attrs(sh, hs[0], p11.CKA_MODULUS_BITS)[p11.CKA_MODULUS_BITS])
	return int(n)
}

// privateKeys returns the private keys matching id and label (either may be
// empty to match any), sorted by label then id.
func (r *p11Reader) privateKeys(id []byte, label string) ([]p11Key, error) {
	tmpl := []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY)}
	if len(id) > 0 {
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_ID, id))
	}
	if label != "" {
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_LABEL, label))
	}
	var keys []p11Key
	err := r.withSession(func(sh p11.SessionHandle) error {
		hs, err := r.find(sh, tmpl)
		if err != nil {
			return err
		}
		for _, h := range hs {
			keys = append(keys, r.readKey(sh, h))
		}
		return nil
	})
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].label != keys[j].label {
			return keys[i].label < keys[j].label
		}
		return hex.EncodeToString(keys[i].id) < hex.EncodeToString(keys[j].id)
	})
	return keys, err
}

// inUse reports which of label (on a key object) or id (on any object) is
// already taken, so CreateKey can refuse before generating anything.
func (r *p11Reader) inUse(id []byte, label string) (string, error) {
	var what string
	err := r.withSession(func(sh p11.SessionHandle) error {
		for _, class := range []uint{p11.CKO_PRIVATE_KEY, p11.CKO_PUBLIC_KEY} {
			hs, err := r.find(sh, []*p11.Attribute{
				p11.NewAttribute(p11.CKA_CLASS, class),
				p11.NewAttribute(p11.CKA_LABEL, label),
			})
			if err != nil {
				return err
			}
			if len(hs) > 0 {
				what = fmt.Sprintf("a key labelled %q", label)
				return nil
			}
		}
		hs, err := r.find(sh, []*p11.Attribute{p11.NewAttribute(p11.CKA_ID, id)})
		if err != nil {
			return err
		}
		if len(hs) > 0 {
			what = fmt.Sprintf("an object with CKA_ID %x", id)
		}
		return nil
	})
	return what, err
}
