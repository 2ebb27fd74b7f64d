// Package ca is MICA's issuance engine: it decides whether a certificate may
// be issued (profiles and policy), builds it, lints it, records it, signs it
// with the issuing key held in an [hsm.Backend], and commits it to the store
// before anyone sees it. It is also the one place certificates are revoked.
//
// # Issuance in steps
//
// [CA.Issue] runs five steps, each of which can refuse; the comments in
// issue.go name them and give the reason for their order:
//
//  1. check: parse and verify the CSR, check the subject key, the names and
//     the lifetime against the [Profile] (and against the names a front end
//     authorised, [Request.Identifiers]).
//  2. build and lint: fill a template (go.step.sm/crypto/x509util), sign a
//     throw-away copy with a throw-away key under a copy of the issuer, and
//     run zlint's RFC lints over it.
//  3. record: reserve the serial and write everything known about the
//     certificate to the store in state "requested".
//  4. sign: sign once with the HSM key and check the result is the
//     certificate that was linted.
//  5. commit: mark it issued in the same transaction as its audit event, and
//     only then return it.
//
// A crash or error anywhere leaves at worst a "requested" row: a signature
// can be lost, never a certificate that a client holds.
//
// # Setting up a hierarchy
//
// [Init] creates a self-signed root and an issuing intermediate, both keys
// generated inside backends. The root key can be left offline; later
// intermediates are signed with [SignIntermediate].
//
// # Revocation
//
// [CA.Revoke] is the only revocation path. With Options.RevocationStore set
// the CA also runs the revocation service (revocation.go, crl.go, ocsp.go):
// OCSP responses pre-signed at issuance and revocation, CRLs signed in
// batches by [CA.RunRevocation] under a store lock so one replica signs,
// [CA.RespondOCSP] for the HTTP front end, and the blocked-key check in
// Issue's first step, which every front end inherits. [CA.IncidentRevoke]
// revokes a selection and blocks its keys as one audited incident.
//
// # Errors
//
// Every error returned by this package wraps exactly one kind of the
// vocabulary in errors.go ([ErrPolicy], [ErrBadCSR], …) inside an [*Error]
// whose Msg names the reason in words a requester can act on. Front ends map
// the kind to their protocol and show Msg; they never parse error strings.
//
// # What this package must never do
//
//   - return a certificate that is not committed to the store;
//   - copy subject fields or extensions from a CSR that policy did not check;
//   - handle private key material of a CA: it only holds [crypto.Signer]s
//     (the throw-away lint key and the HTTPS listener key are not CA keys);
//   - put a PIN, passphrase or key into an error, log line or audit event.
package ca
