// Package discover finds certificates MICA did not necessarily issue —
// presented by TLS servers, lying in files — and records where each one
// is installed.
//
// # Sources and sinks
//
// Every discovery source ([Scanner] for TLS endpoints, [Files] for PEM,
// DER and PKCS#12 files) runs as Run(ctx, sink) and pushes what it finds
// to a [Sink]: each [Found] chain with its stable location ("host:port"
// or "host:/path", the upsert key of an installation), and each target it
// could not read with the reason. An unreachable host or a corrupt file
// is data about the run, never a reason to stop it; Run returns an error
// only when the run itself cannot proceed (context cancelled).
// [StoreSink] writes to the inventory, which matches each certificate to
// MICA's record by fingerprint or marks it external. `mica agent` runs the
// file source on a host with a sink that reports to MICA over mutual TLS.
// [Runner] runs stored discovery jobs (CLI, or each serve replica polling).
//
// # What it must never do
//
// The scanner must not be a tool for probing networks it was not aimed
// at: every address is checked against the [AllowList] before any packet
// is sent, host names are resolved first and the resolved, checked
// address is what is dialled (no second lookup to rebind), and CIDR
// ranges are capped in size. Handshakes skip verification on purpose —
// discovery records what is presented, it does not trust it — and the
// connection is closed right after the handshake; nothing is sent.
package discover
