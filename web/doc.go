// Package web is the security team's window on MICA: the admin JSON API
// under /api/v1/ and the browser UI under /ui/, both on the HTTPS
// listener.
//
// # What it may and must never do
//
// web reads the inventory (certificates with their labels and
// installations, discovery jobs, the audit log) and acts only through
// narrow paths: revocation goes through [Revoker] (ca.CA.Revoke, the one
// revocation path, which audits and refreshes CRL/OCSP); labels, users,
// discovery jobs and schedules through the store, which audits them in the
// same transaction. Bulk actions (at most [MaxBulk] certificates) apply
// one of those paths per certificate, each atomic on its own, and add one
// cert.bulk event. web never signs anything and never touches key
// material.
//
// # Access control
//
// Every API request carries "Authorization: Bearer mica_…" (a token made
// by `mica token create --role R`; only its SHA-256 is stored and the
// comparison is constant-time). Roles:
//
//   - viewer: read certificates, issuers, discovery
//   - operator: viewer, plus revoke, label, run and schedule discovery
//   - auditor: read the audit log only
//   - admin: everything, and alone manages users (changing a role,
//     password or disabling ends that user's sessions; the last enabled
//     admin cannot be demoted, disabled or deleted)
//
// A missing or wrong token is 401; a valid token whose role does not allow
// the call is 403 and writes a "denied" audit event. Every mutating call
// is audited. Request bodies are capped at [MaxBody].
//
// # Errors
//
// Errors are JSON {"error": "…"} with the status the ca error vocabulary
// or the inventory error maps to (see errors.go); internal causes are
// logged, never sent.
package web
