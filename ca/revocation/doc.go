// Package revocation encodes and signs the two things relying parties use
// to learn that a certificate is no longer good: X.509 v2 CRLs (RFC 5280
// §5) and OCSP responses (RFC 6960, RFC 5019 profile, RFC 9654 nonces).
//
// It is a pure encoding library: it takes a crypto.Signer and
// *x509.Certificate and imports nothing else from MICA, so it has no
// opinion on storage, scheduling or HTTP. The ca package decides what is
// revoked and when to sign; the server serves the bytes.
//
// # CRLs
//
// WriteCRL streams a CRL of any size in bounded memory. The standard
// library's x509.CreateRevocationList needs every entry as a Go value plus
// the whole encoding in memory — about 1 KB per entry, a gigabyte for a
// million revocations. Here the entries come from an EntrySource (a
// database cursor, typically) and are encoded on the fly to about 40 bytes
// each into a spool that moves to a temp file past 1 MiB. DER wants the
// length of the entry list before the list, and the signature wants a
// digest of everything, so the spool is read twice: once into the hash,
// once to the output. The source is read once, so one cursor over one
// snapshot suffices. Ed25519 issuers are the exception: pure Ed25519 signs
// the message, not a digest, so their TBSCertList (~40 bytes per entry) is
// held in memory.
//
// Sharding: CRLShard(serial, n) partitions an issuer's certificates over
// n CRLs; each shard's CRL carries an Issuing Distribution Point naming its
// URL, which must also be the CRL Distribution Point written into the
// certificates of that shard. Delta CRLs (CRLTemplate.DeltaOf) and the
// Freshest CRL pointer are supported too.
//
// # OCSP
//
// golang.org/x/crypto/ocsp can parse and create responses but puts
// extensions in singleExtensions; the nonce belongs in responseExtensions,
// where OpenSSL and every other client look. So the encoder here is ours:
// CreateResponse builds a BasicOCSPResponse (ResponderID by key,
// signed by the issuer or by a delegated responder, see
// DelegatedResponderTemplate) and echoes Request.Nonce at the right level.
// ParseRequest is strict DER and returns *RequestError (always
// errors.Is(err, ErrMalformedRequest)) for anything it does not accept, so
// a handler never crashes on hostile input and answers
// MalformedRequestResponse. The unsuccessful responses are constants.
//
// Requests without a nonce can be answered from responses pre-signed at
// issuance and revocation (CreateResponse with a zero Nonce and a SHA-1
// CertID from NewCertID); only nonce requests need a live signature.
package revocation
