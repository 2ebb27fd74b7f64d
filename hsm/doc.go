// Package hsm holds MICA's private keys behind one small interface, Backend,
// and signs with them.
//
// Two backends exist:
//
//   - pkcs11 (pkcs11:module-path=…;token=…): keys live in a PKCS#11 token such
//     as a network HSM, a smart card or SoftHSM2. They are generated on the
//     token with CKA_TOKEN, CKA_SENSITIVE and CKA_EXTRACTABLE=false, and every
//     signature is computed by the token. It goes through go.step.sm/crypto/kms
//     (ThalesGroup/crypto11 on top of miekg/pkcs11) and therefore needs cgo.
//   - softkms (softkms:dir=…): keys are PKCS#8 PEM files encrypted with a
//     passphrase (PBES2, PBKDF2-SHA256, AES-256-CBC). It is the embedded default
//     for labs and tests, and the way to keep an offline root on removable
//     media. It is honest about what it is: Protection reports it as a software
//     key, never as HSM-backed.
//
// Keys are named by URIs: pkcs11:id=<hex>;object=<label> and softkms:name=<name>
// (or softkms:path=/abs/file.key for a key kept outside the backend directory).
//
// What this package must never do:
//
//   - Export a private key. No method returns key material; the crypto.Signer
//     values it hands out are wrappers that expose only Public and Sign, so a
//     caller cannot type-assert its way to an *ecdsa.PrivateKey or to
//     crypto11's Delete.
//   - Log or return a secret. PINs and passphrases arrive as Secret, whose
//     formatting methods print [REDACTED]; they are never put in a URI, an
//     error message or a log line. Backend URIs that carry pin-value (or any
//     other PIN attribute) are refused rather than quietly accepted.
//   - Fall back silently. If the configuration names pkcs11 and the binary was
//     built without cgo, or the module, token or PIN is wrong, Open fails with
//     an error that says so. It never substitutes a software key for an HSM
//     key, and never creates a key where one was expected to exist.
//
// Errors wrap ErrNotFound, ErrExists, ErrWrongPIN, ErrUnsupported and
// ErrClosed where those apply; test them with errors.Is.
//
// SoftHSM2 reads SOFTHSM2_CONF when the module is initialised, once per
// process, so tests that point it at a fresh token (package hsmtest) must not
// run in parallel and must Close every pkcs11 Backend before switching.
package hsm
