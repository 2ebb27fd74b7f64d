// Package acme is MICA's RFC 8555 (ACME) server: accounts, orders,
// authorizations, challenges and their validation, finalization, download
// and revocation, with the extensions MICA supports — key rollover
// (RFC 8555 section 7.3.5), external account binding, IP identifiers
// (RFC 8738), tls-alpn-01 (RFC 8737), ACME Renewal Information (RFC 9773)
// and certificate profiles (draft-aaron-acme-profiles).
//
// # Layout
//
// One file per resource: directory.go, nonce.go, account.go,
// keychange.go, order.go, finalize.go, authz.go, challenge.go, cert.go,
// revoke.go, renewalinfo.go. jws.go verifies every POST; problem.go is the
// only place errors become RFC 7807 problem documents; validate.go runs
// challenge validation on a bounded worker pool with http01.go, dns01.go
// and tlsalpn01.go doing the network work, caa.go checking CAA (RFC 8659,
// RFC 8657) for profiles that ask for it, and recover.go re-queuing
// validations a stopped replica left behind. metrics.go and audit.go
// count and record what happens.
//
// # State
//
// Every piece of state — nonces, accounts, orders, authorizations,
// challenges, EAB keys — lives in the inventory, so any replica behind a
// load balancer can answer any request: a nonce issued by one replica is
// redeemed, exactly once, by whichever replica receives it. State changes
// are compare-and-set transitions in the store, so a client and the
// validator (or two replicas) racing on one object cannot both move it.
// Expiry is applied when an object is read.
//
// # Directories and profiles
//
// Each [Profile] is served at /acme/{name}/directory and maps to one or
// more MICA issuance profiles of the ca package (offered through the
// profiles extension; the first is the default). The "default" ACME
// profile maps to the CA's "server" profile and needs no EAB.
//
// # What this package must never do
//
//   - touch key material or sign anything: certificates come from
//     [ca.CA.Issue] and revocations go through [ca.CA.Revoke];
//   - let one account read or act on another account's orders,
//     authorizations, challenges or certificates;
//   - accept a nonce twice, or a request whose signature, url or nonce
//     does not check out;
//   - show internal errors to clients: problem documents carry the ca
//     package's user message, the cause goes to the log.
package acme
