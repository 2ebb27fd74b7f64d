//go:build !cgo

package hsm

import (
	"context"
	"fmt"
)

// PKCS11Supported reports whether this binary can use PKCS#11 tokens: not
// without cgo.
func PKCS11Supported() bool { return false }

// openPKCS11 fails loudly in a binary built without cgo: PKCS#11 modules are
// C shared libraries, and a CA configured for an HSM must never quietly run
// on something else.
func openPKCS11(context.Context, Config) (Backend, error) {
	return nil, fmt.Errorf("%w: pkcs11 backend unavailable: this mica binary was built without cgo (CGO_ENABLED=0); rebuild with cgo to use an HSM", ErrUnsupported)
}
