// Package enroll is MICA's EST server (RFC 7030, with the RFC 8951
// clarifications): devices fetch the CA certificates, enroll, re-enroll,
// read the CSR attributes their label wants and ask the server to generate
// their key.
//
// # Labels
//
// Every operation is served at /.well-known/est/{op} (the default label)
// and /.well-known/est/{label}/{op}. A [Label] names the ca profile that
// issues, which credentials may enroll (one-time tokens over HTTP Basic,
// client certificates from MICA or from extra manufacturer roots), whether
// an operator must approve each request, and the key pool serverkeygen
// draws from. One rule table (rules.go) says how each of the five
// operations is admitted; every handler goes through it.
//
// # Wire format
//
// Responses always carry Content-Transfer-Encoding: base64 with the body
// base64-encoded and wrapped at 76 columns (RFC 8951 keeps the header for
// the clients that need it, such as globalsign/est). Requests are read
// leniently: base64 at any width or on one line, CRLF or LF, with or
// without the header, PEM-armoured or raw DER CSRs. A body declared as
// anything but application/pkcs10 is refused with 415; an undeclared one
// is accepted. Header names are written as the RFCs spell them
// (WWW-Authenticate, not Go's Www-Authenticate): libest compares them
// case-sensitively.
//
// # Authentication
//
// A label accepts one-time tokens over HTTP Basic (stored as SHA-256 of a
// 256-bit secret, redeemed by one conditional UPDATE, handed back when
// the enrollment they paid for is refused), client certificates MICA
// issued and still holds as issued, and certificates from the label's
// manufacturer roots. A certificate authorises only its own identity
// (identity.go): the CSR must ask for exactly its subject and SANs,
// compared by meaning, and an empty SAN list means exactly that subject;
// an IDevID authorises what the label maps it to. Re-enrollment needs a
// MICA certificate from the label's profile. A label can also demand RFC
// 7030 section 3.5 tls-unique proof of possession.
//
// # Key pools
//
// serverkeygen draws from a per-label pool of pre-generated keys kept in
// the store, sealed with AES-256-GCM under a key derived from a
// deterministic signature by a backend-held RSA key (pool.go), claimed
// with a single DELETE … RETURNING and refilled in the background at 20%.
// A CSR carrying id-aa-asymmDecryptKeyID gets the key back as CMS
// EnvelopedData for the client certificate it names (envelope.go).
//
// # CSR attributes
//
// csrattrs lists the profile's key type, signature algorithm and name
// requirements RFC 7030 style, then again as an RFC 9908
// CertificationRequestInfoTemplate (csrattrs.go).
//
// # Refusal
//
// Refusals are translated from the ca error vocabulary at this edge only
// (errors.go): 400 malformed, 401 with WWW-Authenticate for missing or
// wrong credentials, 403 with a text reason for names or keys policy
// refuses, 404 for an unknown label, 415 for a body of another media type, 429 with Retry-After when a client's
// fixed-window budget (kept in the database, so replicas share it) is
// spent. Every refusal is audited with its reason and source address.
//
// # What this package must never do
//
//   - sign anything with a CA key or build a certificate itself: it asks
//     [ca.CA.Issue], which commits the certificate before returning it;
//   - return a certificate to a client that the store does not hold as
//     issued;
//   - keep a pooled private key at rest unsealed, or log any private key,
//     token secret or sealing key;
//   - believe a client-certificate header from an address that is not a
//     configured trusted proxy.
package enroll
